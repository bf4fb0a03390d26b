"""`latest` names one source's newest backup: README's `restore latest` once restored another
volume's backup and exited 0 after two volumes had been backed up."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from engine.scaleway.api import Apis
from engine.scaleway.config import scw_client

PASS = "latest passphrase"


@pytest.fixture
def two_volumes(tmp_path: Path, sandbox: Any, scw_env: Any, monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, str]]:
    """A store holding backups of web-01-data then dev-scratch (the newest)."""
    from engine.store import Store

    store = str(tmp_path / "store")
    Store.init(store, PASS).close()
    monkeypatch.setenv("STRONGROOM_PASSPHRASE", PASS)
    monkeypatch.setenv("STRONGROOM_NO_DAEMON", "1")
    ids = {}
    for name in ("web-01-data", "dev-scratch"):
        assert main(["--store", store, "--json", "backup", name]) == 0
        ids[name] = json.loads(capsys.readouterr().out)[0]["snapshot"]
    return store, ids


def test_latest_is_scoped_to_a_volume(two_volumes: tuple[str, dict[str, str]], sandbox: Any,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    store, ids = two_volumes
    apis = Apis(scw_client())

    def volumes() -> set[str]:
        return {v.id for v in apis.block.list_volumes_all(zone="fr-par-1",
                                                          include_deleted=False)}

    before = volumes()
    # README's own example: refused, both sources listed, nothing made
    assert main(["--store", store, "restore", "latest", "--zone", "fr-par-1",
                 "--name", "web-01-data-restored"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("strongroom: error: ")
    assert "web-01-data" in err and "dev-scratch" in err and "latest:VOLUME" in err
    assert volumes() == before

    # latest:VOLUME restores that volume's backup, and says which before it acts
    assert main(["--store", store, "--json", "restore", "latest:web-01-data", "--zone",
                 "fr-par-1", "--name", "web-01-data-restored"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["resolved"]["id"] == ids["web-01-data"]
    assert doc["resolved"]["volume_name"] == "web-01-data" and doc["resolved"]["time"]
    assert f"snapshot {ids['web-01-data'][:12]} of volume web-01-data" in out.err
    made = apis.block.get_volume(volume_id=doc["volume_id"], zone="fr-par-1")
    assert made.name == "web-01-data-restored" and made.size == 20 * 1000 ** 3
    apis.block.delete_volume(volume_id=made.id, zone="fr-par-1")


def test_volume_option_and_ids_choose_too(two_volumes: tuple[str, dict[str, str]],
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    store, ids = two_volumes
    assert main(["--store", store, "--json", "snapshots"]) == 0
    infos = {i["id"]: i for i in json.loads(capsys.readouterr().out)}
    web_id = infos[ids["web-01-data"]]["source"]["volume_id"]
    for args in (["latest", "--volume", "dev-scratch"], [f"latest:{web_id}"],
                 ["latest", "--volume", web_id]):
        want = ids["dev-scratch"] if "dev-scratch" in args else ids["web-01-data"]
        out = tmp_path / "image.qcow2"
        out.unlink(missing_ok=True)
        assert main(["--store", store, "restore-image", *args, str(out)]) == 0
        err = capsys.readouterr().err
        said = err.splitlines()[0]
        assert said.startswith(f"strongroom: snapshot {want[:12]} of volume "), err
        assert " taken 20" in said
    # --volume with an id, an unknown volume, an empty one: usage errors
    for args in (["--volume", "dev-scratch", ids["web-01-data"][:8]],
                 ["latest:no-such-volume"], ["latest:"]):
        assert main(["--store", store, "restore-image", *args, str(tmp_path / "x")]) == 2
        assert capsys.readouterr().err.count("\n") == 1


def test_a_bare_latest_still_works_with_one_source(tmp_path: Path, store_dir: Path,
                                                   store_cli: Any) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"x" * 100_000)
    for _ in range(2):
        assert store_cli("backup-image", "--name", "disk", str(image)).code == 0
    res = store_cli("restore-image", "latest", str(tmp_path / "out.img"))
    assert res.code == 0 and "of image disk," in res.stderr.splitlines()[0]
