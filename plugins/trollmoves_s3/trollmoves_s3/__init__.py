"""Trollmoves s3 plugin."""
