"""Strongroom's engine: everything that is not drawing.

Nothing under ``engine/`` imports Textual or the ``tui`` package (an import-linter contract in
pyproject.toml and ``tests/test_layering.py`` hold us to it). The CLI, the TUI and the tests all
drive the same calls.
"""
