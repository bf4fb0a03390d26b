"""`strongroom inventory | preflight | backup | restore` against the sandbox: exit codes and the
--json shapes other tools rely on."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scaleway.block.v1 import CreateVolumeRequestFromEmpty

from cli.main import main
from engine.scaleway.api import Apis
from engine.scaleway.config import scw_client
from tests.scaleway.helpers import leftovers

PASS = "cli passphrase"
ZONES = ["--zone", "fr-par-1", "--zone", "fr-par-2", "--zone", "nl-ams-1"]


@pytest.fixture
def cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    from engine.store import Store

    url = str(tmp_path / "store")
    Store.init(url, PASS).close()
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", PASS)
    return url


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_inventory_json(scw_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    volumes = _json(capsys, ["--json", "inventory", *ZONES])
    assert isinstance(volumes, list) and volumes
    for v in volumes:
        assert {"id", "name", "zone", "project_id", "size", "type", "perf_iops", "status",
                "backupable", "server", "last_backup"} <= set(v)
    web = next(v for v in volumes if v["name"] == "web-01-data")
    assert web["size"] == 20_000_000_000 and web["server"] == "web-01" and web["backupable"]


def test_inventory_table(scw_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", *ZONES]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["NAME", "ID", "ZONE"]
    assert "web-01-data" in out and "not backupable" in out


def test_preflight_exit_codes(sandbox: Any, scw_env: Any, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    report = _json(capsys, ["--json", "preflight", "--zone", "fr-par-1"])
    assert report["ok"] is True and report["bucket"] == sandbox.buckets["fr-par"]
    access, secret = sandbox.keys["noblock"]
    monkeypatch.setenv("SCW_ACCESS_KEY", access)
    monkeypatch.setenv("SCW_SECRET_KEY", secret)
    assert main(["preflight", "--zone", "fr-par-1"]) == 1
    out = capsys.readouterr().out
    assert "missing" in out and "BlockStorageFullAccess" in out and "→" in out


def test_backup_and_restore_json(sandbox: Any, scw_env: Any, cli_store: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    done = _json(capsys, ["--store", cli_store, "--json", "backup", "vault-secrets"])
    assert len(done) == 1 and set(done[0]) >= {"volume_id", "snapshot"}
    # With the store readable, the inventory tells when each volume was last backed up.
    inventory = _json(capsys, ["--store", cli_store, "--json", "inventory", *ZONES])
    vault = next(v for v in inventory if v["id"] == done[0]["volume_id"])
    assert vault["last_backup"] and vault["backup_count"] == 1
    restored = _json(capsys, ["--store", cli_store, "--json", "restore",
                              done[0]["snapshot"][:10], "--zone", "nl-ams-1",
                              "--name", "vault-cli"])
    assert set(restored) >= {"volume_id", "snapshot_id"}
    apis = Apis(scw_client())
    new = apis.block.get_volume(volume_id=restored["volume_id"], zone="nl-ams-1")
    assert new.name == "vault-cli"
    assert leftovers(apis, "nl-ams-1", sandbox.buckets["nl-ams"]) == {
        "objects": [], "uploads": [], "snapshots": []}
    apis.block.delete_volume(volume_id=new.id, zone="nl-ams-1")


def test_restore_refuses_a_taken_name_unless_told_to_rename(
        sandbox: Any, scw_env: Any, cli_store: str, capsys: pytest.CaptureFixture[str]) -> None:
    done = _json(capsys, ["--store", cli_store, "--json", "backup", "vault-secrets"])
    apis = Apis(scw_client())
    volumes = lambda: {v.id for v in apis.block.list_volumes_all(  # noqa: E731
        zone="nl-ams-1", include_deleted=False)}
    before = volumes()
    # By default the new volume takes the original's name, which is taken in its zone.
    assert main(["--store", cli_store, "restore", done[0]["snapshot"], "--zone",
                 "nl-ams-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "vault-secrets already exists" in err and "--rename-on-clash" in err
    assert volumes() == before
    assert leftovers(apis, "nl-ams-1", sandbox.buckets["nl-ams"]) == {
        "objects": [], "uploads": [], "snapshots": []}
    # Asked for, the old behaviour; the plain form says the new name beside the new id.
    assert main(["--store", cli_store, "restore", done[0]["snapshot"], "--zone", "nl-ams-1",
                 "--rename-on-clash"]) == 0
    volume_id, name = capsys.readouterr().out.strip().split("\t")
    new = apis.block.get_volume(volume_id=volume_id, zone="nl-ams-1")
    assert new.name == name and name.startswith("vault-secrets-restored-")
    apis.block.delete_volume(volume_id=volume_id, zone="nl-ams-1")


def test_bad_arguments_are_one_line_usage_errors(sandbox: Any, scw_env: Any, cli_store: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", cli_store, "backup", "no-such-volume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "strongroom inventory" in err
    legacy = next(v for v in _json(capsys, ["--json", "inventory", *ZONES])
                  if not v["backupable"] and v["type"] in ("b_ssd", "l_ssd"))
    assert main(["--store", cli_store, "backup", legacy["id"]]) == 2
    assert "cannot be backed up" in capsys.readouterr().err
    assert main(["--store", cli_store, "restore", "latest", "--zone", "xx-yyy-9"]) == 2


def test_inventory_escapes_hostile_volume_names(scw_env: Any, scw_client: Any,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    client = scw_client()
    apis = Apis(client)
    project = apis.account.list_projects_all()[0].id
    name = "evil\n\x1b]0;owned\x07\u202e"
    vol = apis.block.create_volume(zone="fr-par-1", name=name, perf_iops=5000,
                                   project_id=project,
                                   from_empty=CreateVolumeRequestFromEmpty(size=10_000_000_000))
    try:
        assert main(["inventory", "--zone", "fr-par-1"]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        (row,) = [line for line in out.splitlines() if vol.id in line]
        assert row.startswith("evil\\x0a\\x1b]0;owned\\x07\\xe2\\x80\\xae ")
    finally:
        apis.block.wait_for_volume(volume_id=vol.id, zone="fr-par-1")
        apis.block.delete_volume(volume_id=vol.id, zone="fr-par-1")
