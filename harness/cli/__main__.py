"""``python -m harness.cli``: the ``harness`` command without its console script."""

from harness.cli.main import main

raise SystemExit(main())
