"""Trollmoves plugin: HTTP(S) mover (http://, https://)."""
