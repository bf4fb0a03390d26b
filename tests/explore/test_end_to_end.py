"""The product's pieces composed, end to end: a sandbox volume holding a real ext4 filesystem →
`strongroom backup` (real scaleway SDK and boto3 against the sandbox: SBS snapshot, QCOW2 export
to the staging bucket, ranged GETs into the store) → `strongroom ls / cat / restore-files` inside
the stored image → the bytes of a known file, unchanged. Then `strongroom restore` of that
snapshot into a new volume, a backup of that volume, and the same file read out of it."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.sandbox.content import build_ext4
from engine.scaleway.api import Apis
from engine.scaleway.config import scw_client
from scaleway.block.v1 import CreateVolumeRequestFromEmpty

PASS = "end to end passphrase"
ZONE = "fr-par-1"
GB = 1_000_000_000
# A file whose bytes the test knows: random, so nothing compresses or dedups it away, and
# spread over many filesystem blocks and several store chunks.
KNOWN_PATH = "data/proof/known.bin"
KNOWN_BYTES = os.urandom(700_000) + b"end of the known file\n"


@dataclass
class E2E:
    volume_id: str
    volume_name: str
    store: str
    snapshot: str


def cli(capsysbinary: pytest.CaptureFixture[bytes], *argv: str, code: int = 0) -> bytes:
    done = main(list(argv))
    out = capsysbinary.readouterr()
    assert done == code, out.err.decode(errors="replace")
    return out.out


def _wait_available(apis: Apis, volume_id: str) -> None:
    deadline = time.monotonic() + 30
    while apis.block.get_volume(volume_id=volume_id, zone=ZONE).status != "available":
        assert time.monotonic() < deadline, "volume never became available"
        time.sleep(0.05)


@pytest.fixture
def e2e_volume(sandbox: Any, scw_env: Any, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A new 1 GB SBS volume on the sandbox whose content is the sandbox's generated ext4 tree
    plus KNOWN_PATH (only the few MB of data are allocated)."""
    apis = Apis(scw_client())
    name = f"e2e-{os.urandom(3).hex()}"
    vol = apis.block.create_volume(zone=ZONE, name=name, perf_iops=5000,
                                   from_empty=CreateVolumeRequestFromEmpty(size=GB))
    _wait_available(apis, vol.id)
    build_ext4(sandbox.volume_path(vol.id), GB, seed=7, volume_id=vol.id, budget=1 << 20,
               flavor="e2e", extra={KNOWN_PATH: KNOWN_BYTES})
    yield vol.id, name
    apis.block.delete_volume(volume_id=vol.id, zone=ZONE)


@pytest.fixture
def backed_up(e2e_volume: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              capsysbinary: pytest.CaptureFixture[bytes]) -> E2E:
    from engine.store import Store

    monkeypatch.setenv("STRONGROOM_KDF_MEMORY_KIB", "8192")  # a throwaway store
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", PASS)
    store = str(tmp_path / "store")
    Store.init(store, PASS).close()
    volume_id, name = e2e_volume
    done = json.loads(cli(capsysbinary, "--store", store, "--json", "backup", volume_id))
    assert [d["volume_id"] for d in done] == [volume_id]
    return E2E(volume_id, name, store, done[0]["snapshot"])


def _explore_known_file(capsysbinary: pytest.CaptureFixture[bytes], store: str, snapshot: str,
                        dest: Path) -> None:
    """ls, ls --json, cat and restore-files of KNOWN_PATH inside ``snapshot``."""
    folder, name = "/" + KNOWN_PATH.rsplit("/", 1)[0], KNOWN_PATH.rsplit("/", 1)[1]
    top = cli(capsysbinary, "--store", store, "ls", snapshot[:8]).decode().splitlines()
    assert {"data/", "etc/", "srv/", "home/", "lost+found/"} <= set(top)
    assert cli(capsysbinary, "--store", store, "ls", snapshot, folder).decode() == name + "\n"
    entries = json.loads(cli(capsysbinary, "--store", store, "--json", "ls", snapshot, folder))
    assert [(e["name"], e["type"], e["size"]) for e in entries] == \
        [(name, "file", len(KNOWN_BYTES))]
    assert cli(capsysbinary, "--store", store, "cat", snapshot, "/" + KNOWN_PATH) == KNOWN_BYTES
    out = cli(capsysbinary, "--store", store, "restore-files", snapshot, "/" + KNOWN_PATH,
              "--to", str(dest)).decode()
    assert "restored 1 files" in out
    assert (dest / name).read_bytes() == KNOWN_BYTES


def test_backup_then_explore_gives_back_the_file(
        backed_up: E2E, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    snapshots = json.loads(cli(capsysbinary, "--store", backed_up.store, "--json", "snapshots"))
    info = next(s for s in snapshots if s["id"] == backed_up.snapshot)
    assert info["source"]["volume_id"] == backed_up.volume_id
    assert info["bytes"] > 0
    _explore_known_file(capsysbinary, backed_up.store, backed_up.snapshot, tmp_path / "files")


def test_restore_to_new_volume_then_back_up_and_explore_it(
        backed_up: E2E, sandbox: Any, tmp_path: Path,
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    restored = json.loads(cli(capsysbinary, "--store", backed_up.store, "--json", "restore",
                              backed_up.snapshot, "--zone", ZONE,
                              "--name", backed_up.volume_name + "-back"))
    new_id = restored["volume_id"]
    apis = Apis(scw_client())
    try:
        again = json.loads(cli(capsysbinary, "--store", backed_up.store, "--json", "backup",
                               new_id))
        second = again[0]["snapshot"]
        assert second != backed_up.snapshot
        _explore_known_file(capsysbinary, backed_up.store, second, tmp_path / "files")
        # The same image went round: nothing but the manifest is new in the store.
        assert again[0]["stored_bytes"] < 64 * 1024
    finally:
        apis.block.delete_volume(volume_id=new_id, zone=ZONE)
