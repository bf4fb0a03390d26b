"""Screens of the Strongroom app, one module (and one .tcss) each."""
