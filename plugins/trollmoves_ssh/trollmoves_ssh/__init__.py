"""Trollmoves ssh plugin."""
