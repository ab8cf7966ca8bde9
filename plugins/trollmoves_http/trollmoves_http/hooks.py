"""Hook implementations of the trollmoves-http plugin."""

from __future__ import annotations
