from slnl.cli import main

raise SystemExit(main())
