"""(see the package docstring filled in by its issue)"""
