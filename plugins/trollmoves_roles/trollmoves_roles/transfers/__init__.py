"""Pushing files with movers: the worker pool, the mover cache, the transfer service."""
