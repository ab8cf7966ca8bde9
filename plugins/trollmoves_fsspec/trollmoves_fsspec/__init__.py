"""Trollmoves plugin: any fsspec filesystem as a mover, for schemes no other plugin provides."""
