"""Strongroom terminal app (Textual)."""
