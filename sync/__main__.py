"""``python -m sync`` is the ``flowtly-sync`` command."""

from sync.cli.main import main

raise SystemExit(main())
