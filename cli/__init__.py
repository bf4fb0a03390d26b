"""The command-line driver: parses, calls the engine, prints. A driver beside ``tui/``.

``cli.main`` holds the entry point (``strongroom``); ``cli.commands.<area>`` the sub-commands of
one area each; ``cli.context``, ``cli.progress`` and ``cli.output`` what the commands share.
"""
