"""Writing input files as producers do."""

from __future__ import annotations

import os
from pathlib import Path


def write_file(directory: Path, name: str, content: bytes) -> Path:
    """Write ``content`` under a hidden name the watched patterns ignore, then rename it to ``name``."""
    tmp = directory / f".{name}.partial"
    tmp.write_bytes(content)
    final = directory / name
    os.replace(tmp, final)
    return final
