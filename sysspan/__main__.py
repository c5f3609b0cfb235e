from sysspan.cli import console

console()
