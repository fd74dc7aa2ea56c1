"""``python -m sync`` is the ``flowtly-sync`` command."""

from sync.cli import main

raise SystemExit(main())
