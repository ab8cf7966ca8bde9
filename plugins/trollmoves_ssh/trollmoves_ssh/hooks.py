"""Hook implementations of the trollmoves-ssh plugin."""
