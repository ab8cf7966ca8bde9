"""Run a ``trollmoves`` command under tracemalloc; on SIGUSR2 write a snapshot to ``$TROLLMOVES_TRACEMALLOC_DIR``.

``python -m benchmarks.memprofile server ...`` behaves like ``trollmoves server ...``. Used by
``python -m benchmarks.memgrowth`` to find what grows; not for production.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import tracemalloc
from pathlib import Path


def main() -> int:
    tracemalloc.start(25)
    out = Path(os.environ["TROLLMOVES_TRACEMALLOC_DIR"])
    count = 0

    def dump(signum: int, frame: object) -> None:
        nonlocal count
        gc.collect()
        count += 1
        tracemalloc.take_snapshot().dump(str(out / f"{os.getpid()}-{count}.snap"))
        (out / f"{os.getpid()}-{count}.done").touch()

    signal.signal(signal.SIGUSR2, dump)
    from trollmoves_core.cli import main as cli_main
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
