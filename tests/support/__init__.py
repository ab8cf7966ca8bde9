"""Helpers shared by the role, end-to-end and interop tests (importable as ``support``)."""
