"""Trollmoves core: plugin host, mover contract, file mover, watchers and the ``trollmoves`` launcher.

Plugins implement the hooks in :mod:`trollmoves_core.hookspecs` with :data:`hookimpl` and
declare a module in the ``trollmoves`` entry-point group::

    [project.entry-points.trollmoves]
    example = "trollmoves_example.hooks"
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("trollmoves-core")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

PROJECT_NAME = "trollmoves"
"""The pluggy project name and the entry-point group plugins register under."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for trollmoves hook implementations."""

__all__ = ["PROJECT_NAME", "__version__", "hookimpl"]
