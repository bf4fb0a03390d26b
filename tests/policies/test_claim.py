"""A run's claim on a volume: while one run holds it, another cannot take it."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.policies.claim import Claim, ClaimTaken
from engine.policies.verification import record_verified, verified_times
from engine.store import Store


def test_a_volume_claimed_by_one_run_is_refused_to_another(tmp_path: Path, fast_kdf: None) -> None:
    url = str(tmp_path / "store")
    with Store.init(url, "pw") as store, Store.open(url, "pw") as other:
        first = Claim(store, "vol-1").take(pause=0.05)
        with pytest.raises(ClaimTaken):
            Claim(other, "vol-1").take(pause=0.05)
        Claim(other, "vol-2").take(pause=0.05).release()  # another volume: free
        first.release()
        Claim(other, "vol-1").take(pause=0.05).release()  # free again once released
        # the claim's name reveals nothing of the volume id
        assert all(b"vol-1" not in store.backend.get(s.name)
                   for s in store.backend.list("locks/"))


def test_verification_records_are_kept_in_the_store(tmp_path: Path, fast_kdf: None) -> None:
    url = str(tmp_path / "store")
    with Store.init(url, "pw") as store:
        record_verified(store, "2026-01-01T00:00:00.000000Z", ["a" * 64, "b" * 64])
        record_verified(store, "2026-02-01T00:00:00.000000Z", ["b" * 64])
        store.backend.put("verified/" + "0" * 32, b"garbage")  # damaged: ignored
    with Store.open(url, "pw") as again:
        assert verified_times(again) == {"a" * 64: "2026-01-01T00:00:00.000000Z",
                                         "b" * 64: "2026-02-01T00:00:00.000000Z"}
