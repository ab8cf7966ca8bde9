"""Trollmoves plugin: WIS2 notification messages out of and into the pytroll chain."""
