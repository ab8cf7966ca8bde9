"""Running the launcher with stderr on a pseudo-terminal, to see its progress bar."""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def run_on_terminal(*args: str, without_rich: bool = False) -> tuple[int, str]:
    """Run ``trollmoves ARGS`` with stderr on a pseudo-terminal; its exit status and what it drew there."""
    code = "import sys\nfrom trollmoves_core.cli import main\nsys.exit(main(sys.argv[1:]))"
    if without_rich:
        code = "import sys\nsys.modules['rich'] = None\n" + code  # every `import rich...` now fails
    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160"}
    with subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=terminal, env=env) as proc:
        os.close(terminal)
        drawn = b""
        try:
            while chunk := os.read(controller, 65536):
                drawn += chunk
        except OSError:  # EIO: the child closed the terminal
            pass
        finally:
            os.close(controller)
    return proc.returncode, drawn.decode(errors="replace")


def frames(drawn: str) -> list[str]:
    """The frames of the bar, each redrawn over the previous on its line, before any later line."""
    return drawn.split("\r\n", 1)[0].lstrip("\r").split("\r")
