"""Helpers the tests share (fixtures are in tests/conftest.py, which both folders see)."""
