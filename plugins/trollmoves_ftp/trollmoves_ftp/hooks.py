"""Hook implementations of the trollmoves-ftp plugin."""
