"""``python -m cli`` runs the ``strongroom`` command."""
from cli.main import run

run()
