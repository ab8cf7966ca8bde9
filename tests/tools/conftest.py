"""Fixtures for the operator tools' tests (``trollmoves req``, ``trollmoves check``, docs)."""

from support.upstream import upstream_process

__all__ = ["upstream_process"]
