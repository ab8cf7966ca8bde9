"""Hook implementations of the trollmoves-s3 plugin."""
