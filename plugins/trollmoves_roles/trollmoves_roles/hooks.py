"""Hook implementations of the trollmoves-roles plugin."""
