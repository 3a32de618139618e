from gan_course.cli import main

raise SystemExit(main())
