"""Journals and pending messages: what survives a restart."""
