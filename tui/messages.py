"""Messages that screens post for the App to route, so that no screen imports another."""
from __future__ import annotations

from textual.message import Message


class RevealVolume(Message):
    """Show this volume in the inventory (posted by the restore wizard once it has made it)."""

    def __init__(self, project_id: str, zone: str, volume_id: str) -> None:
        super().__init__()
        self.project_id, self.zone, self.volume_id = project_id, zone, volume_id
