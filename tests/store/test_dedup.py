"""Deduplication: a second backup of the same or similar data stores little."""
from __future__ import annotations

import json
import os
from pathlib import Path

from tests.fixtures.store import make_image


def test_same_and_similar_data_store_little(tmp_path: Path, store_dir: Path, store_cli) -> None:
    image = make_image(tmp_path / "v1.img", 8_000_000, seed=1, zero_every=0)
    first = json.loads(store_cli("--json", "backup-image", str(image)).out)
    assert first["stored_bytes"] > 4_000_000
    again = json.loads(store_cli("--json", "backup-image", str(image)).out)
    assert again["stored_bytes"] < 20_000
    data = bytearray(image.read_bytes())
    data[3_000_000:3_000_000 + 100_000] = os.urandom(100_000)  # change ~1%
    data[6_000_000:6_000_000] = b"inserted bytes shift everything after them"
    (tmp_path / "v2.img").write_bytes(bytes(data))
    second = json.loads(store_cli("--json", "backup-image", str(tmp_path / "v2.img")).out)
    assert second["stored_bytes"] < 800_000
    out = tmp_path / "v2.out"
    assert store_cli("restore-image", second["snapshot"], str(out)).code == 0
    assert out.read_bytes() == bytes(data)
    assert store_cli("check", "--read-data").code == 0


def test_dedup_when_every_prefix_test_says_maybe(tmp_path: Path, fast_kdf: None,
                                                 monkeypatch) -> None:
    """When every chunk is a prefix hit (as if all prefixes collided), each answer is the exact
    check's (the ids of packs in flight, then SQLite): nothing new may be skipped, and nothing
    stored twice."""
    from engine.store import Store
    from engine.store.known import KnownIds
    from tests.fixtures.store import PASSPHRASE

    monkeypatch.setattr(KnownIds, "maybe", lambda self, cid: True)
    image = make_image(tmp_path / "v1.img", 4_000_000, seed=3, zero_every=0)
    with Store.init(str(tmp_path / "s"), PASSPHRASE) as store:
        with open(image, "rb") as f:
            first = store.backup(f)
        with open(image, "rb") as f:
            second = store.backup(f)
        assert first.stored_bytes > 2_000_000 and second.stored_bytes < 20_000
        out = tmp_path / "out.img"
        store.restore("latest", out)
        assert out.read_bytes() == image.read_bytes()
        assert store.check(read_data=True).ok
