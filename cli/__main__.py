"""``python -m cli`` runs the ``strongroom`` command."""
import sys

from cli.main import main

sys.exit(main())
