"""Trollmoves roles plugin."""
