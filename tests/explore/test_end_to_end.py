"""The product's pieces composed, end to end: a sandbox volume holding a real ext4 filesystem →
`strongroom backup` (real scaleway SDK and boto3 against the sandbox: SBS snapshot, QCOW2 export
to the staging bucket, ranged GETs into the store) → `strongroom ls / cat / restore-files` inside
the stored image → the bytes of a known file, unchanged. Then `strongroom restore` of that
snapshot into a new volume, a backup of that volume, and the same file read out of it."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from engine.sandbox.content import build_ext4, generate_tree
from engine.scaleway.api import Apis
from engine.scaleway.config import scw_client
from scaleway.block.v1 import CreateVolumeRequestFromEmpty

from tests.conftest import stop_daemon

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


@pytest.fixture(scope="module")
def backed_up(sandbox: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    """A new 1 GB SBS volume on the sandbox whose content is the sandbox's generated ext4 tree
    plus KNOWN_PATH (only the few MB of data are allocated), backed up once for the module by
    `strongroom backup`."""
    from engine.store import Store

    base = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as mp:
        # module scope runs before the per-test isolation: set every directory explicitly
        for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
            mp.setenv(var, str(base / var.lower()))
        runtime = Path(tempfile.mkdtemp(prefix="sr-e2e-", dir="/tmp"))  # its own daemon
        mp.setenv("XDG_RUNTIME_DIR", str(runtime))
        for name, value in sandbox.env.items():
            mp.setenv(name, value)
        mp.setenv("STRONGROOM_KDF_MEMORY_KIB", "8192")  # a throwaway store
        mp.setenv("STRONGROOM_PASSPHRASE", PASS)
        apis = Apis(scw_client())
        name = f"e2e-{os.urandom(3).hex()}"
        vol = apis.block.create_volume(zone=ZONE, name=name, perf_iops=5000,
                                       from_empty=CreateVolumeRequestFromEmpty(size=GB))
        try:
            _wait_available(apis, vol.id)
            build_ext4(sandbox.volume_path(vol.id), GB, seed=7, volume_id=vol.id,
                       budget=1 << 20, flavor="e2e", extra={KNOWN_PATH: KNOWN_BYTES})
            store = str(base / "store")
            Store.init(store, PASS).close()
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert main(["--store", store, "--json", "backup", vol.id]) == 0
            done = json.loads(out.getvalue())
            assert [d["volume_id"] for d in done] == [vol.id]
            yield E2E(vol.id, name, store, done[0]["snapshot"])
        finally:
            apis.block.delete_volume(volume_id=vol.id, zone=ZONE)
            stop_daemon(runtime)
            shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def e2e_env(backed_up: E2E, scw_env: Any, monkeypatch: pytest.MonkeyPatch) -> E2E:
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", PASS)
    return backed_up


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
    assert "restored 1 file," in out
    assert (dest / name).read_bytes() == KNOWN_BYTES


def test_backup_then_explore_gives_back_the_file(
        e2e_env: E2E, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    backed_up = e2e_env
    snapshots = json.loads(cli(capsysbinary, "--store", backed_up.store, "--json", "snapshots"))
    info = next(s for s in snapshots if s["id"] == backed_up.snapshot)
    assert info["source"]["volume_id"] == backed_up.volume_id
    assert info["bytes"] > 0
    _explore_known_file(capsysbinary, backed_up.store, backed_up.snapshot, tmp_path / "files")
    listed = cli(capsysbinary, "--store", backed_up.store, "ls", "latest", "/data/proof")
    assert listed == b"known.bin\n"


def _contents(root: Path) -> dict[str, tuple[str, bytes | str]]:
    out: dict[str, tuple[str, bytes | str]] = {}
    for path in root.rglob("*"):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_file():
            out[rel] = ("file", path.read_bytes())
    return out


def test_whole_volume_restores_as_the_sandbox_generated_it(
        e2e_env: E2E, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """Every generated file (logs, CSVs, SQLite, binaries, duplicates, symlinks, markup-like
    names) comes back byte for byte from `restore-files SNAPSHOT /`."""
    cli(capsysbinary, "--store", e2e_env.store, "restore-files", e2e_env.snapshot, "/",
        "--to", str(tmp_path / "out"))
    expected = tmp_path / "expected"
    expected.mkdir()
    generate_tree(expected, 7, e2e_env.volume_id, 1 << 20, "e2e")
    (expected / KNOWN_PATH).parent.mkdir(parents=True)
    (expected / KNOWN_PATH).write_bytes(KNOWN_BYTES)
    restored = _contents(tmp_path / "out" / "root")
    assert len(restored) > 20
    assert restored == _contents(expected)


def test_encrypted_volume_backs_up_and_explore_says_why_it_cannot_list(
        sandbox: Any, scw_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from engine.store import Store

    monkeypatch.setenv("STRONGROOM_KDF_MEMORY_KIB", "8192")
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", PASS)
    store = str(tmp_path / "store")
    Store.init(store, PASS).close()
    done = json.loads(cli(capsysbinary, "--store", store, "--json", "backup", "vault-secrets"))
    assert main(["--store", store, "ls", done[0]["snapshot"]]) == 1
    err = capsysbinary.readouterr().err.decode()
    assert err.startswith("strongroom: error: ") and "encrypted (LUKS2)" in err
    assert err.count("\n") == 1


def test_restore_to_new_volume_then_back_up_and_explore_it(
        e2e_env: E2E, sandbox: Any, tmp_path: Path,
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    backed_up = e2e_env
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
        # The same image went round: nothing but the manifest is new in the store, and no
        # file inside differs.
        assert again[0]["stored_bytes"] < 64 * 1024
        assert main(["--store", backed_up.store, "diff", backed_up.snapshot, second]) == 0
        out = capsysbinary.readouterr()
        assert out.out == b"" and "no differences" in out.err.decode()
    finally:
        apis.block.delete_volume(volume_id=new_id, zone=ZONE)


def test_backup_through_faults_still_gives_back_the_exact_file(
        e2e_env: E2E, sandbox_faults: Any, tmp_path: Path,
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """429s and 503s from the APIs and S3 bodies cut mid-way during the export transfer: the
    retries must not let a wrong byte into the store, which explore would then hand out."""
    sandbox_faults.faults(rate_429=0.1, rate_503=0.05, drop_s3=2)
    done = json.loads(cli(capsysbinary, "--store", e2e_env.store, "--json", "backup",
                          e2e_env.volume_id))
    assert sandbox_faults.world.storage.drops_left() == 0  # both cuts happened
    sandbox_faults.faults()
    snapshot = done[0]["snapshot"]
    assert cli(capsysbinary, "--store", e2e_env.store, "cat", snapshot,
               "/" + KNOWN_PATH) == KNOWN_BYTES
    assert main(["--store", e2e_env.store, "diff", e2e_env.snapshot, snapshot]) == 0
    assert "no differences" in capsysbinary.readouterr().err.decode()
