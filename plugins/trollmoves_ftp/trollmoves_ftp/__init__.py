"""Trollmoves ftp plugin."""
