"""`strongroom forget`: restic's keep rules on the store's snapshots (times set with `--time`),
refusals, removal by name, and the same kept set as restic 0.14 on the same history."""
from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.store import make_image


def test_backup_image_time_is_recorded(tmp_path: Path, store_dir: Path, store_cli) -> None:
    image = make_image(tmp_path / "a.img", 200_000, seed=1)
    res = store_cli("--json", "backup-image", str(image), "--time", "2021-03-04 05:06:07")
    assert res.code == 0, res.stderr
    snaps = json.loads(store_cli("--json", "snapshots").out)
    assert [s["time"] for s in snaps] == ["2021-03-04T05:06:07.000000Z"]
    res = store_cli("backup-image", str(image), "--time", "last tuesday")
    assert res.code == 2 and "bad time 'last tuesday'" in res.stderr
    res = store_cli("--json", "backup-image", str(image), "--time", "2021-03-04T07:00:00+02:00")
    snaps = json.loads(store_cli("--json", "snapshots").out)
    assert [s["time"] for s in snaps] == ["2021-03-04T05:00:00.000000Z",
                                          "2021-03-04T05:06:07.000000Z"]
