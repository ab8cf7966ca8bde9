"""Example trollmoves plugin: a ``memory://`` mover, the smallest complete mover."""
