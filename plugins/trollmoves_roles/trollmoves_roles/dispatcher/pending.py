"""Moved to :mod:`trollmoves_roles.pending` (shared by the dispatcher and the downloader)."""

from trollmoves_roles.pending import PendingMessage, PendingMessages

__all__ = ["PendingMessage", "PendingMessages"]
