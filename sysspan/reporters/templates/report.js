
(function(){
'use strict';
var D=JSON.parse(document.getElementById('sysspan-data').textContent);
var CSSV=getComputedStyle(document.documentElement);
var CLS=D.classes, COL=CLS.map(function(c){return CSSV.getPropertyValue('--c-'+c).trim()||'#94a3b8';});
var ERR='#dc2626', DEC='#7c3aed';
var tip=document.getElementById('tip');
function fmt(ns){
  if(ns<1e3)return Math.round(ns)+' ns';
  if(ns<1e6)return +(ns/1e3).toPrecision(3)+' µs';
  if(ns<1e9)return +(ns/1e6).toPrecision(3)+' ms';
  if(ns<60e9)return +(ns/1e9).toPrecision(3)+' s';
  var m=Math.floor(ns/60e9);return m+'m '+String(Math.round(ns/1e9-m*60)).padStart(2,'0')+'s';
}
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function showTip(ev,html){tip.innerHTML=html;tip.hidden=false;
  var x=ev.clientX+14,y=ev.clientY+14,w=tip.offsetWidth,h=tip.offsetHeight;
  if(x+w>window.innerWidth-8)x=ev.clientX-w-14; if(y+h>window.innerHeight-8)y=ev.clientY-h-14;
  tip.style.left=Math.max(4,x)+'px';tip.style.top=Math.max(4,y)+'px';}
function hideTip(){tip.hidden=true;}
function setupCanvas(cv,h){var dpr=window.devicePixelRatio||1,w=cv.parentNode.clientWidth||1200;
  cv.width=Math.round(w*dpr);cv.height=Math.round(h*dpr);cv.style.height=h+'px';
  var g=cv.getContext('2d');g.setTransform(dpr,0,0,dpr,0,0);return {g:g,w:w,h:h};}
function niceStep(range,target){var raw=range/Math.max(1,target),p=Math.pow(10,Math.floor(Math.log10(raw))),m=raw/p;
  return (m<1.5?1:m<3.5?2:m<7.5?5:10)*p;}
function ellipsize(g,text,w){if(g.measureText(text).width<=w)return text;
  var lo=0,hi=text.length;while(lo<hi){var mid=(lo+hi+1)>>1;if(g.measureText(text.slice(0,mid)+'…').width<=w)lo=mid;else hi=mid-1;}
  return lo>0?text.slice(0,lo)+'…':'';}

// ------------------------------------------------------------------ timeline
function Timeline(){
  var cv=document.getElementById('tl-canvas'),rows=D.rows,T=D.timeline,names=T.names||[];
  var ROW=22,AXIS=26,ACT=46,TOP=AXIS+ACT+4,LABEL=230,total=Math.max(1,D.span_ns),NC=CLS.length;
  var act=T.act||[],AS=NC+2,actMax=1;for(var q=0;q<act.length;q+=AS){var sm=0;for(var z=1;z<=NC;z++)sm+=act[q+z];if(sm>actMax)actMax=sm;}
  var v0=0,v1=total,scroll=0,ctx=null,drag=null;
  var H=Math.min(460,TOP+Math.max(1,rows.length)*ROW+6);
  var nproc=rows.filter(function(r){return r.k!=='run';}).length;
  var exact=T.exact||null, dec=T.dec||{}, cells=T.cells||{};
  var nameCls=names.map(function(nm){var c=D.syscall_class[nm];return c==null?CLS.length-1:c;});
  function x(t,w){return LABEL+(t-v0)/(v1-v0)*(w-LABEL-8);}
  function tAt(px,w){return v0+(px-LABEL)/(w-LABEL-8)*(v1-v0);}
  function maxScroll(){return Math.max(0,rows.length*ROW-(H-TOP-4));}
  function draw(){
    ctx=setupCanvas(cv,H);var g=ctx.g,w=ctx.w;g.clearRect(0,0,w,H);
    cv.setAttribute('data-view',Math.round(v0)+' '+Math.round(v1)+' '+total+' '+Math.round(scroll));
    g.font='12px '+getComputedStyle(document.body).fontFamily;
    // axis
    var step=niceStep(v1-v0,(w-LABEL)/110);g.fillStyle='#667085';g.strokeStyle='#eef0f3';g.lineWidth=1;
    g.textBaseline='middle';
    for(var t=Math.ceil(v0/step)*step;t<=v1;t+=step){var px=Math.round(x(t,w))+.5;
      g.beginPath();g.moveTo(px,AXIS-6);g.lineTo(px,H);g.stroke();g.fillText(fmt(t),px+3,AXIS/2);}
    g.fillStyle='#98a2b3';g.fillText(nproc+' process'+(nproc==1?'':'es')+(D.hidden_rows>0?' (+'+D.hidden_rows+' not drawn)':''),10,AXIS/2);
    var pxPerNs=(w-LABEL-8)/(v1-v0);
    // whole-trace activity: stacked syscall time per bin, by class
    g.fillStyle='#475467';g.font='600 11px '+getComputedStyle(document.body).fontFamily;g.fillText('syscall activity',10,AXIS+ACT/2-6);
    g.fillStyle='#98a2b3';g.font='11px '+getComputedStyle(document.body).fontFamily;g.fillText('all processes',10,AXIS+ACT/2+8);
    g.save();g.beginPath();g.rect(LABEL,AXIS,w-LABEL,ACT);g.clip();
    var abw=T.aw,base=AXIS+ACT-2;
    for(q=0;q<act.length;q+=AS){var ax=x(T.o+act[q]*abw,w),aww=Math.max(1,abw*pxPerNs);if(ax+aww<LABEL||ax>w)continue;var yy=base;
      for(z=0;z<NC;z++){var hh=act[q+1+z]/actMax*(ACT-8);if(hh<=0)continue;g.fillStyle=COL[z];g.fillRect(ax,yy-hh,aww,hh);yy-=hh;}
      if(act[q+1+NC]>0){g.fillStyle=ERR;g.fillRect(ax,AXIS+2,aww,2);}}
    g.restore();
    g.strokeStyle='#eef0f3';g.beginPath();g.moveTo(0,TOP-2.5);g.lineTo(w,TOP-2.5);g.stroke();
    g.save();g.beginPath();g.rect(0,TOP,w,H-TOP);g.clip();
    var first=Math.max(0,Math.floor(scroll/ROW)),last=Math.min(rows.length-1,Math.ceil((scroll+H-TOP)/ROW));
    for(var i=first;i<=last;i++){
      var r=rows[i],y=TOP+i*ROW-scroll;
      if(i%2){g.fillStyle='#fafbfc';g.fillRect(0,y,w,ROW);}
      // label
      g.fillStyle=r.k==='run'?'#3b5bdb':'#1f2937';g.font=(r.k==='run'?'600 ':'')+'12px '+getComputedStyle(document.body).fontFamily;
      var indent=8+Math.min(r.d,14)*11, lab=r.n, pid=r.pid!=null?String(r.pid):'';
      g.fillText(ellipsize(g,lab,LABEL-indent-50),indent,y+ROW/2);
      g.fillStyle='#98a2b3';g.font='11px '+getComputedStyle(document.body).fontFamily;g.textAlign='right';g.fillText(pid,LABEL-8,y+ROW/2);g.textAlign='left';
      g.save();g.beginPath();g.rect(LABEL,y,w-LABEL,ROW);g.clip();
      // lifetime
      if(r.e>r.s){var a=x(r.s,w),b=x(r.e,w);g.fillStyle=r.k==='run'?'rgba(59,91,219,.10)':'rgba(100,116,139,.13)';
        g.fillRect(a,y+4,Math.max(1,b-a),ROW-8);if(r.err||(r.x!=null&&r.x!==0)){g.fillStyle=ERR;g.fillRect(Math.max(a,b-2),y+4,2,ROW-8);}}
      // decisions
      var dd=dec[i];if(dd){for(var j=0;j<dd.length;j+=3){var a2=x(dd[j],w),b2=x(dd[j]+dd[j+1],w);if(b2<LABEL||a2>w)continue;
        g.fillStyle='rgba(124,58,237,.18)';g.fillRect(a2,y+2,Math.max(1.5,b2-a2),ROW-4);g.fillStyle=DEC;g.fillRect(a2,y+2,Math.max(1.5,b2-a2),3);}}
      // syscalls
      var ex=exact?exact[i]:null;
      if(ex){for(var k=0;k<ex.length;k+=4){var s=ex[k],d=ex[k+1];var a3=x(s,w),ww=d*pxPerNs;if(a3+ww<LABEL||a3>w)continue;
          var isErr=ex[k+3]>=0;g.fillStyle=isErr?ERR:COL[nameCls[ex[k+2]]];
          g.fillRect(a3,isErr?y+5:y+7,Math.max(1,ww),isErr?ROW-10:ROW-14);}}
      else if(cells[i]){var c=cells[i],bw=T.w;for(var m=0;m<c.length;m+=4){var s2=T.o+c[m]*bw,a4=x(s2,w),ww2=bw*pxPerNs;if(a4+ww2<LABEL||a4>w)continue;
          var busy=Math.min(1,c[m+1]/bw);g.globalAlpha=.35+.65*Math.sqrt(busy);g.fillStyle=COL[c[m+2]];g.fillRect(a4,y+7,Math.max(1,ww2),ROW-14);
          g.globalAlpha=1;if(c[m+3]>0){g.fillStyle=ERR;g.fillRect(a4,y+4,Math.max(1.5,ww2),3);}}}
      g.restore();
    }
    g.restore();
    g.strokeStyle='#e5e8ec';g.beginPath();g.moveTo(LABEL-.5,AXIS);g.lineTo(LABEL-.5,H);g.moveTo(0,AXIS-.5);g.lineTo(w,AXIS-.5);g.stroke();
    if(maxScroll()>0){var trackH=H-TOP,th=Math.max(20,trackH*trackH/(rows.length*ROW)),ty=TOP+(trackH-th)*scroll/maxScroll();
      g.fillStyle='rgba(100,116,139,.35)';g.fillRect(w-5,ty,4,th);}
  }
  function zoom(f,cx){var w=ctx?ctx.w:cv.clientWidth,t=cx!=null?tAt(cx,w):(v0+v1)/2;
    var span=Math.max(1000,Math.min(total*1.05,(v1-v0)*f));var frac=cx!=null?(t-v0)/(v1-v0):.5;
    v0=t-frac*span;v1=v0+span;if(v0<-total*.02){v0=-total*.02;v1=v0+span;}if(v1>total*1.03){v1=total*1.03;v0=v1-span;}draw();}
  function hit(ev){var rect=cv.getBoundingClientRect(),px=ev.clientX-rect.left,py=ev.clientY-rect.top;
    if(py<TOP)return null;var i=Math.floor((py-TOP+scroll)/ROW);if(i<0||i>=rows.length)return null;
    return {i:i,px:px,t:tAt(px,ctx.w),r:rows[i]};}
  cv.addEventListener('wheel',function(ev){ev.preventDefault();
    if(ev.shiftKey){scroll=Math.max(0,Math.min(maxScroll(),scroll+ev.deltaY));draw();return;}
    var rect=cv.getBoundingClientRect();zoom(Math.pow(1.0015,ev.deltaY),Math.max(LABEL,ev.clientX-rect.left));},{passive:false});
  cv.addEventListener('mousedown',function(ev){drag={x:ev.clientX,y:ev.clientY,v0:v0,v1:v1,s:scroll};cv.classList.add('drag');});
  window.addEventListener('mouseup',function(){drag=null;cv.classList.remove('drag');});
  window.addEventListener('mousemove',function(ev){if(!drag)return;var w=ctx.w,dt=(ev.clientX-drag.x)/(w-LABEL-8)*(drag.v1-drag.v0);
    v0=drag.v0-dt;v1=drag.v1-dt;scroll=Math.max(0,Math.min(maxScroll(),drag.s-(ev.clientY-drag.y)));draw();});
  cv.addEventListener('dblclick',function(){v0=0;v1=total;scroll=0;draw();});
  cv.addEventListener('mouseleave',hideTip);
  cv.addEventListener('mousemove',function(ev){if(drag){hideTip();return;}var h=hit(ev);if(!h){hideTip();return;}var r=h.r;
    var head='<b>'+esc(r.n)+'</b>'+(r.pid!=null?' pid '+r.pid:'')+(r.t>1?' · '+r.t+' threads':'');
    var life=fmt(Math.max(0,r.e-r.s))+' · '+r.sc.toLocaleString()+' syscalls ('+fmt(r.ns)+')'+(r.er?' · <span class="t-err">'+r.er+' failed</span>':'');
    if(h.px<LABEL){showTip(ev,head+'\n'+life+(r.a?'\n'+esc(r.a):'')+(r.x!=null?'\nexit '+r.x:'')+(r.err?' <span class="t-err">'+esc(r.err)+'</span>':''));return;}
    var tol=4*(v1-v0)/(ctx.w-LABEL-8),ex=exact?exact[h.i]:null,best=null;
    if(ex){for(var k=0;k<ex.length;k+=4){if(ex[k]-tol<=h.t&&h.t<=ex[k]+ex[k+1]+tol){if(!best||ex[k+1]>best[1])best=[ex[k],ex[k+1],ex[k+2],ex[k+3]];}}
      if(best){showTip(ev,'<b>'+esc(names[best[2]])+'</b> '+fmt(best[1])+(best[3]>=0?' <span class="t-err">'+esc(names[best[3]])+'</span>':'')+'\nat +'+fmt(best[0])+'\n'+head);return;}}
    else if(cells[h.i]){var c=cells[h.i],b=Math.floor((h.t-T.o)/T.w);for(var m=0;m<c.length;m+=4){if(c[m]===b){
      showTip(ev,'<b>'+fmt(c[m+1])+'</b> in syscalls (mostly '+CLS[c[m+2]]+')'+(c[m+3]?' · <span class="t-err">'+c[m+3]+' failed</span>':'')+'\n'+fmt(T.o+b*T.w)+' – '+fmt(T.o+(b+1)*T.w)+'\n'+head);return;}}}
    var dd=dec[h.i];if(dd){for(var j=0;j<dd.length;j+=3){if(dd[j]<=h.t&&h.t<=dd[j]+dd[j+1]){showTip(ev,'<b>'+esc(names[dd[j+2]])+'</b> '+fmt(dd[j+1])+'\ndecision\n'+head);return;}}}
    showTip(ev,head+'\n'+life+'\nat +'+fmt(Math.max(0,h.t)));});
  document.getElementById('tl-in').onclick=function(){zoom(1/1.6);};
  document.getElementById('tl-out').onclick=function(){zoom(1.6);};
  document.getElementById('tl-reset').onclick=function(){v0=0;v1=total;scroll=0;draw();};
  window.addEventListener('resize',draw);
  draw();
}

// ------------------------------------------------------------------ flame graph
function Flame(){
  var F=D.flame,n=F.name.length,cv=document.getElementById('flame-canvas'),ROW=19;
  document.getElementById('flame-by').textContent='syscall time by '+D.flame_by+' · click a frame to zoom';
  var kids=[];for(var i=0;i<n;i++)kids.push([]);
  var depth=new Array(n);depth[0]=0;var maxD=0;
  for(i=1;i<n;i++){kids[F.parent[i]].push(i);depth[i]=depth[F.parent[i]]+1;if(depth[i]>maxD)maxD=depth[i];}
  var NC=CLS.length,focus=0,boxes=[];
  function colour(i){var k=F.kind[i];if(k<NC)return COL[k];
    if(k===NC)return hsl(F.name[i],205,30,55,84); // process: cool blue-greys
    if(k===NC+1)return '#a78bfa'; if(k===NC+2)return hsl(F.name[i],22,26,85,76); // source frames: warm
    if(k===NC+4)return '#cbd5e1';return '#e2e8f0';}
  function hsl(s,h0,hr,sat,l){var hash=0;for(var j=0;j<s.length;j++)hash=(hash*31+s.charCodeAt(j))|0;
    return 'hsl('+(h0+Math.abs(hash)%hr)+','+sat+'%,'+(l-Math.abs(hash>>8)%7)+'%)';}
  var H=Math.max(60,(maxD+1)*ROW+4);
  function draw(){var c=setupCanvas(cv,H),g=c.g,w=c.w;g.clearRect(0,0,w,H);boxes=[];
    g.font='11.5px '+getComputedStyle(document.body).fontFamily;g.textBaseline='middle';
    var anc=[],a=focus;while(a>0){a=F.parent[a];anc.push(a);}
    // ancestors of the focus span the full width
    for(var q=anc.length-1;q>=0;q--)box(anc[q],0,w,g);
    layout(focus,0,w,g);
    var crumbs=[];a=focus;while(a>=0){crumbs.unshift(F.name[a]);a=F.parent[a];}
    document.getElementById('flame-crumbs').textContent=focus?crumbs.join(' › '):'';
  }
  function box(i,x0,wd,g){var y=depth[i]*ROW;g.fillStyle=colour(i);g.fillRect(x0+.5,y+.5,Math.max(.5,wd-1),ROW-1);
    if(wd>28){g.fillStyle=F.kind[i]===NC+1?'#fff':'#111827';var label=ellipsize(g,F.name[i]+(i===0?' · '+fmt(F.value[0]):''),wd-8);if(label)g.fillText(label,x0+4,y+ROW/2);}
    boxes.push([x0,y,wd,i]);}
  function layout(i,x0,wd,g){box(i,x0,wd,g);var ks=kids[i],x=x0,v=F.value[i]||1;
    for(var j=0;j<ks.length;j++){var cw=wd*F.value[ks[j]]/v;if(cw>=.4)layout(ks[j],x,cw,g);x+=cw;}}
  function at(ev){var r=cv.getBoundingClientRect(),px=ev.clientX-r.left,py=ev.clientY-r.top;
    for(var j=boxes.length-1;j>=0;j--){var b=boxes[j];if(px>=b[0]&&px<b[0]+b[2]&&py>=b[1]&&py<b[1]+ROW)return b[3];}return -1;}
  cv.addEventListener('click',function(ev){var i=at(ev);if(i>=0){focus=i;draw();}});
  cv.addEventListener('mousemove',function(ev){var i=at(ev);if(i<0){hideTip();return;}
    var path=[],a=i;while(a>0){path.unshift(F.name[a]);a=F.parent[a];}
    var pct=F.value[0]?(100*F.value[i]/F.value[0]).toFixed(1):'0';
    showTip(ev,'<b>'+esc(F.name[i])+'</b>\n'+fmt(F.value[i])+' ('+pct+'% of syscall time) · '+F.count[i].toLocaleString()+' calls'+(path.length>1?'\n'+esc(path.join(' › ')):''));});
  cv.addEventListener('mouseleave',hideTip);
  document.getElementById('flame-reset').onclick=function(){focus=0;draw();};
  window.addEventListener('resize',draw);
  draw();
}

// ------------------------------------------------------------------ sortable tables
function Sortable(){
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'),function(tb){
    var ths=tb.querySelectorAll('th');
    Array.prototype.forEach.call(ths,function(th,col){th.addEventListener('click',function(){
      var text=th.getAttribute('data-t')==='s',desc=!th.classList.contains('sorted-desc');
      if(text&&!th.classList.contains('sorted-asc')&&!th.classList.contains('sorted-desc'))desc=false;
      Array.prototype.forEach.call(ths,function(h){h.classList.remove('sorted-desc','sorted-asc');});
      th.classList.add(desc?'sorted-desc':'sorted-asc');
      var body=tb.tBodies[0],rs=Array.prototype.slice.call(body.rows);
      function key(r){var c=r.cells[col];if(!c)return '';var v=c.getAttribute('data-v');return text?c.textContent.toLowerCase():(v!=null?parseFloat(v):parseFloat(c.textContent.replace(/,/g,''))||0);}
      rs.sort(function(a,b){var x=key(a),y=key(b);return (x<y?-1:x>y?1:0)*(desc?-1:1);});
      rs.forEach(function(r){body.appendChild(r);});});});});
}

function More(){
  Array.prototype.forEach.call(document.querySelectorAll('.more-btn'),function(b){
    var label=b.textContent;b.addEventListener('click',function(){var t=document.getElementById(b.getAttribute('data-for'));
      var c=t.classList.toggle('collapsed');b.textContent=c?label:'show fewer';});});
}

// Drives every interaction once (zoom, pan, reset, hover, flame zoom, sorting): a headless
// browser opening the page with #selftest proves the handlers run without errors.
function SelfTest(){
  if(location.hash!=='#selftest')return;
  function at(el,type,x,y,opts){var r=el.getBoundingClientRect(),o={bubbles:true,cancelable:true,clientX:r.left+x,clientY:r.top+y};
    for(var k in opts||{})o[k]=opts[k];el.dispatchEvent(type==='wheel'?new WheelEvent(type,o):new MouseEvent(type,o));}
  var tl=document.getElementById('tl-canvas'),fl=document.getElementById('flame-canvas'),w=tl.clientWidth;
  at(tl,'mousemove',w*0.5,90);at(tl,'mousemove',60,90);at(tl,'mousemove',w*0.5,40);
  at(tl,'wheel',w*0.4,90,{deltaY:-400});at(tl,'wheel',w*0.4,90,{deltaY:120,shiftKey:true});
  at(tl,'mousedown',w*0.5,90);at(window.document.body,'mousemove',w*0.5-80,70);at(window.document.body,'mouseup',0,0);
  at(tl,'mousemove',w*0.6,95);at(tl,'dblclick',w*0.5,90);
  ['tl-in','tl-out','tl-reset','flame-reset'].forEach(function(id){document.getElementById(id).click();});
  at(fl,'mousemove',40,28);at(fl,'click',40,28);at(fl,'mousemove',40,47);at(fl,'mouseleave',0,0);
  Array.prototype.forEach.call(document.querySelectorAll('.more-btn'),function(b){b.click();b.click();});
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable th'),function(th){th.click();});
  var calls=document.querySelector('#table-syscalls th:nth-child(3)');if(calls)calls.click();
  at(tl,'wheel',w*0.4,90,{deltaY:-600});
  document.getElementById('selftest').textContent='done';
}

var parts=[['timeline',Timeline],['more',More],['flame graph',Flame],['tables',Sortable]],ok=true;
parts.push(['self-test',SelfTest]);
parts.forEach(function(p){try{p[1]();}catch(e){ok=false;(window.__sysspanError||console.log)(p[0]+': '+(e&&e.stack||e));}});
document.getElementById('render-status').textContent=ok?'ok':'failed';
})();
