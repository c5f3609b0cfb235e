
(function(){
  var errs=[];
  function show(msg){
    errs.push(String(msg));
    var el=document.getElementById('js-errors');
    if(el){el.textContent=errs.join('\n');el.hidden=false;}
  }
  window.__sysspanError=show;
  window.addEventListener('error',function(e){show('error: '+(e.message||e)+(e.lineno?' (line '+e.lineno+')':''));});
  window.addEventListener('unhandledrejection',function(e){show('unhandled rejection: '+e.reason);});
  var ce=console.error;console.error=function(){show('console.error: '+Array.prototype.join.call(arguments,' '));if(ce)ce.apply(console,arguments);};
  document.addEventListener('DOMContentLoaded',function(){if(errs.length)show('');});
})();
