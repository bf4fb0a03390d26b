"""Before a backup starts: say exactly what will happen, then ask."""
from __future__ import annotations

from textual.content import Content

from engine.scaleway.config import region_of
from engine.scaleway.inventory import VolumeInfo
from engine.session import Session
from tui.format import human_gb
from tui.screens.confirm import ConfirmScreen


def backup_plan(volumes: list[VolumeInfo], session: Session) -> Content:
    lines = []
    for vol in volumes:
        bucket = session.bucket_for(vol.zone)
        lines.append(Content.assemble(
            ("• ", ""), (str(vol.name), "bold"), f" ({human_gb(vol.size)}, {vol.zone}):\n",
            f"  1. snapshot the volume in {vol.zone}\n",
            f"  2. export it as QCOW2 to bucket {bucket} ({region_of(vol.zone)})\n",
            f"  3. stream it into the store {session.store_url}\n",
            "  4. delete the staging object and the temporary snapshot"))
    return Content("\n").join(lines)


class BackupConfirm(ConfirmScreen):
    def __init__(self, volumes: list[VolumeInfo], session: Session) -> None:
        n = len(volumes)
        super().__init__(f"Back up {n} volume{'s' if n != 1 else ''}?",
                         backup_plan(volumes, session), yes="Back up", no="Cancel")
