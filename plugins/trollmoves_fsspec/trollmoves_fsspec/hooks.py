"""Hook implementations of the trollmoves-fsspec plugin."""

from __future__ import annotations
