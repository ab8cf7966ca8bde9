"""The tests' helper modules, one per job (importable as ``support``: ``tests/`` is on sys.path).

A module beside the tests is a test file or a conftest.py; helpers go here.
"""
