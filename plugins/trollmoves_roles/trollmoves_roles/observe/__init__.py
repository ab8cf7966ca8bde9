"""Metrics and rate-limited logs."""
