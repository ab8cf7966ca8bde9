"""trollsift file patterns: which directory to watch and whether a path matches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trollsift import Parser


class FilePattern:
    """A trollsift pattern over full paths, such as ``/data/{platform}_{start_time:%Y%m%d}.nc``.

    ``directory`` is the deepest directory without fields; ``recursive`` is true when fields
    occur in directory parts, so subdirectories must be watched too.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.parser = Parser(pattern)
        head = pattern.split("{", 1)[0]
        self.recursive = "{" in pattern and "/" in pattern[len(head):]
        self.directory = Path(head if head.endswith(os.sep) else os.path.dirname(head) or ".")

    def match(self, path: str | os.PathLike[str]) -> dict[str, Any] | None:
        """The fields parsed from ``path``, or None when it does not match."""
        try:
            return self.parser.parse(os.fspath(path))
        except ValueError:
            return None

    def glob(self) -> str:
        """A glob matching every path the pattern can match."""
        return self.parser.globify()

    def __repr__(self) -> str:
        return f"FilePattern({self.pattern!r})"
