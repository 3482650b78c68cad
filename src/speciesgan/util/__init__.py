"""Plumbing every layer uses: atomic writes, errors, progress bars, names, tools, weights files.

Nothing here imports any other part of speciesgan (tests/unit/test_layering.py).
"""
