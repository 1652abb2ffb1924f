from ssdns.cli import main

raise SystemExit(main())
