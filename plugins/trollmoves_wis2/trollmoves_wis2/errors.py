"""How a WIS2 notification or topic that breaks the rules is reported: one line naming the field."""

from __future__ import annotations

from trollmoves_core.exceptions import TrollmovesError


class WnmError(TrollmovesError, ValueError):
    """A WIS2 notification message (or topic) is not valid; the text names the field at fault."""
