from detector.sim.cli import main

raise SystemExit(main())
