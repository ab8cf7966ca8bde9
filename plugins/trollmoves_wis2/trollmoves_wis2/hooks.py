"""Hook implementations of the trollmoves-wis2 plugin."""

from __future__ import annotations
