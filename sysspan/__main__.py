from sysspan.cli import main

raise SystemExit(main())
