"""Each volume's backup state from the store's snapshots (engine/protection.py), on a real store."""
from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

from engine.protection import (GONE, NEVER, NOT_BACKUPABLE, OK, STALE, STALE_AFTER,
                               gone_volumes, human_age, protection_of)
from engine.scaleway.inventory import VolumeInfo
from engine.session import Session
from engine.settings import Settings
from engine.store import Store

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc).timestamp()


def vol(vid: str, backupable: bool = True) -> VolumeInfo:
    return VolumeInfo(vid, vid, "fr-par-1", "p1", 10, "sbs_5k", 5000, "available",
                      backupable=backupable, reason="" if backupable else "too large")


def test_states_from_a_real_store(tmp_path: Path, fast_kdf: None) -> None:
    url = str(tmp_path / "store")
    with Store.init(url, "pw") as store:
        for vid, when in (("v-ok", "2026-11-23T03:00:00.000000Z"),
                          ("v-old", "2026-11-20T03:00:00.000000Z"),
                          ("v-old", "2026-11-21T03:00:00.000000Z"),
                          ("v-deleted", "2026-10-01T03:00:00.000000Z")):
            store.backup(io.BytesIO(vid.encode() * 1000), name=vid, time=when,
                         source_info={"volume_id": vid, "volume_name": f"{vid}-name",
                                      "project_id": "p1", "zone": "fr-par-1", "size": 10})
        store.backup(io.BytesIO(b"an image, no volume"), name="disk.img")
    with Session(Settings(), store_url=url, passphrase=lambda: "pw") as session:
        stored = session.stored_volumes()
    assert sorted(stored) == ["v-deleted", "v-ok", "v-old"]  # image backups have no volume
    assert stored["v-old"].backup_count == 2
    assert stored["v-old"].last_backup.startswith("2026-11-21T03:00")

    ok = protection_of(vol("v-ok"), stored["v-ok"], NOW)
    assert (ok.state, human_age(ok.age)) == (OK, "6h")
    old = protection_of(vol("v-old"), stored["v-old"], NOW)
    assert (old.state, human_age(old.age)) == (STALE, "2d")
    assert protection_of(vol("v-new"), None, NOW).state == NEVER
    assert protection_of(vol("v-big", backupable=False), None, NOW).reason == "too large"
    assert protection_of(vol("v-big", backupable=False), None, NOW).state == NOT_BACKUPABLE
    # a policy gives its own RPO: three days makes the old one fine
    assert protection_of(vol("v-old"), stored["v-old"], NOW, 3 * 86400).state == OK
    assert STALE_AFTER > 86400  # a nightly run that starts late is not stale yet

    (gone,) = gone_volumes(stored, ["v-ok", "v-old"], "p1", "fr-par-1")
    assert (gone.id, gone.name, gone.status, gone.backupable) == (
        "v-deleted", "v-deleted-name", GONE, False)
    assert protection_of(gone, stored["v-deleted"], NOW).state == GONE
    assert gone_volumes(stored, ["v-ok", "v-old"], "p2") == []


def test_a_clock_behind_the_store_is_never_a_negative_age() -> None:
    from engine.protection import age_of

    assert age_of("2026-11-24T00:00:00Z", NOW) == 0.0
