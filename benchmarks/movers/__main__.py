"""``python -m benchmarks.movers``: see :mod:`benchmarks.movers.cli`."""

from benchmarks.movers.cli import main

raise SystemExit(main())
