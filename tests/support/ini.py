"""Writing INI configs for the role tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def write_ini(path: Path, sections: Mapping[str, Mapping[str, object]]) -> Path:
    """Write ``sections`` (section name → key → value) as an INI file at ``path``; return it."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path
