"""`strongroom forget`: restic's keep rules on the store's snapshots (times set with `--time`),
refusals, removal by name, and the same kept set as restic 0.14 on the same history."""
from __future__ import annotations

import json
import os
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


def _times(store_cli) -> list[str]:
    return [s["time"] for s in json.loads(store_cli("--json", "snapshots").out)]


def _history(tmp_path: Path, store_dir: Path, times: list[str], names: dict[str, str] | None = None,
             tags: dict[str, dict[str, str]] | None = None) -> None:
    """Snapshots at the given times (in-process: quicker than one command each)."""
    import io

    from engine.store import Store
    from tests.fixtures.store import PASSPHRASE

    data = make_image(tmp_path / "h.img", 100_000, seed=3).read_bytes()
    with Store.open(str(store_dir), PASSPHRASE) as store:
        for i, when in enumerate(times):
            store.backup(io.BytesIO(data + i.to_bytes(4, "little")),
                         name=(names or {}).get(when, "disk"), tags=(tags or {}).get(when, {}),
                         time=when)


def test_a_policy_that_empties_a_group_is_refused_and_removes_nothing(
        tmp_path: Path, store_dir: Path, store_cli) -> None:
    times = [f"2024-01-0{d}T10:00:00Z" for d in range(1, 7)]
    _history(tmp_path, store_dir, times, names={t: ("a" if i % 2 else "b")
                                                for i, t in enumerate(times)},
             tags={times[1]: {"keep": "yes"}, times[3]: {"keep": "yes"}})
    before = _times(store_cli)
    # group "a" has tagged snapshots, group "b" none: the policy would empty "b"
    res = store_cli("forget", "--keep-tag", "keep=yes")
    assert res.code == 2, res.stderr
    assert "would remove every snapshot of name b (3 snapshots)" in res.stderr
    assert "nothing was removed" in res.stderr and res.stderr.count("\n") == 1
    res = store_cli("forget", "--keep-tag", "keep=yes", "--dry-run", "--json")
    assert res.code == 2
    assert _times(store_cli) == before
    # an empty policy, and a policy with snapshots named too
    for args in (["forget"], ["forget", "--keep-last", "0"], ["forget", "--prune"],
                 ["forget", before[0][:4], "--keep-last", "1"]):
        res = store_cli(*args)
        assert res.code == 2, (args, res.stderr)
    assert _times(store_cli) == before
    # by name, the same policy keeps one snapshot per group and is fine
    res = store_cli("forget", "--keep-last", "1", "--group-by", "name")
    assert res.code == 0, res.stderr
    assert _times(store_cli) == [t.replace("Z", ".000000Z") for t in times[4:]]


def test_dry_run_json_says_what_is_kept_and_why(tmp_path: Path, store_dir: Path,
                                                store_cli) -> None:
    times = ["2026-11-27T09:00:00Z", "2026-11-28T09:00:00Z", "2026-11-29T09:00:00Z",
             "2026-11-30T08:00:00Z", "2026-11-30T09:00:00Z"]
    _history(tmp_path, store_dir, times)
    res = store_cli("--json", "forget", "--keep-last", "1", "--keep-daily", "2",
                    "--keep-within", "2d", "--dry-run")
    assert res.code == 0, res.stderr
    doc = json.loads(res.out)
    assert doc["dry_run"] is True and doc["removed"] == []
    [group] = doc["groups"]
    assert group["label"] == "name disk" and group["key"] == {"kind": "name", "name": "disk"}
    kept = {s["time"][:13]: s["reasons"] for s in group["keep"]}
    assert kept == {"2026-11-30T09": ["within 2d", "last", "daily 2026-11-30"],
                    "2026-11-30T08": ["within 2d"],
                    "2026-11-29T09": ["within 2d", "daily 2026-11-29"]}
    assert group["keep"][0]["matches"] == ["within 2d", "last snapshot", "daily snapshot"]
    assert [s["time"][:13] for s in group["remove"]] == ["2026-11-28T09", "2026-11-27T09"]
    assert len(_times(store_cli)) == 5  # a dry run removes nothing
    res = store_cli("--json", "forget", "--keep-last", "1", "--keep-daily", "2",
                    "--keep-within", "2d")
    assert json.loads(res.out)["removed"] == [s["id"] for s in group["remove"]]
    assert _times(store_cli) == [t.replace("Z", ".000000Z") for t in times[2:]]


def test_forget_named_snapshots(tmp_path: Path, store_dir: Path, store_cli) -> None:
    times = ["2025-05-01T00:00:00Z", "2025-05-02T00:00:00Z", "2025-05-03T00:00:00Z"]
    _history(tmp_path, store_dir, times)
    ids = [s["id"] for s in json.loads(store_cli("--json", "snapshots").out)]
    res = store_cli("forget", ids[0][:8], "latest")
    assert res.code == 0, res.stderr
    assert f"remove  {ids[0][:12]}" in res.out and f"remove  {ids[2][:12]}" in res.out
    assert [s["id"] for s in json.loads(store_cli("--json", "snapshots").out)] == [ids[1]]
    res = store_cli("forget", "abcdef12")
    assert res.code == 2 and "no snapshot abcdef12" in res.stderr


def test_forget_prune_gives_the_space_back(tmp_path: Path, store_dir: Path, store_cli) -> None:
    for i in range(3):
        image = tmp_path / f"{i}.img"
        image.write_bytes(os.urandom(2_000_000))
        assert store_cli("backup-image", str(image), "--name", "d",
                         "--time", f"2025-01-0{i + 1}").code == 0
    packs = lambda: sum(p.stat().st_size for d in ("packs", "index")  # noqa: E731
                        for p in (store_dir / d).rglob("*") if p.is_file())
    before = packs()
    res = store_cli("--json", "forget", "--keep-last", "1", "--prune")
    assert res.code == 0, res.stderr
    doc = json.loads(res.out)
    assert len(doc["removed"]) == 2 and doc["prune"]["packs_deleted"] >= 2
    assert before - packs() == doc["prune"]["bytes_freed"] > 3_900_000
    out = tmp_path / "out.img"
    assert store_cli("restore-image", "latest", str(out)).code == 0
    assert out.read_bytes() == (tmp_path / "2.img").read_bytes()
    assert store_cli("check", "--read-data").code == 0


# ---------------------------------------------------------------------------------------------
# The same kept set as restic 0.14, on the same history (times set with --time on both sides)

from tests.store.test_retention import (PASSWORD, cheapen_restic_key, needs_restic,  # noqa: E402
                                        restic)

HISTORY = ["2019-12-27 08:00:00", "2019-12-28 23:59:59", "2019-12-29 12:00:00",
           "2019-12-30 00:30:00", "2019-12-31 23:30:00", "2020-01-01 00:00:01",
           "2020-01-01 06:00:00", "2020-01-02 10:00:00", "2020-01-02 11:00:00",
           "2020-01-05 23:59:59", "2020-01-06 13:00:00", "2020-01-06 14:00:00",
           "2020-02-10 09:00:00", "2020-03-31 12:00:00"]
# Policies whose counts are all used up on HISTORY: restic 0.14 predates the "oldest" rule.
POLICIES = [["--keep-last", "4"], ["--keep-hourly", "5"], ["--keep-daily", "3"],
            ["--keep-weekly", "3", "--keep-monthly", "2"], ["--keep-within", "3d"],
            ["--keep-last", "2", "--keep-daily", "4", "--keep-yearly", "1"],
            ["--keep-within-daily", "80d", "--keep-last", "1"]]


@needs_restic
def test_forget_keeps_what_restic_keeps(tmp_path: Path, store_dir: Path, store_cli) -> None:
    (tmp_path / "file").write_text("tiny\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "TZ": "UTC",
           "RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(tmp_path / "restic")}
    restic(env, "init")
    cheapen_restic_key(tmp_path / "restic")
    for when in HISTORY:
        restic(env, "backup", "--quiet", "--host", "h", "--time", when, str(tmp_path / "file"))
    _history(tmp_path, store_dir, HISTORY)
    fast = {"STRONGROOM_NO_DAEMON": "1"}
    for flags in POLICIES:
        [group] = json.loads(restic(env, "--no-lock", "forget", "--dry-run", "--json", *flags))
        theirs = sorted(s["time"][:19] for s in group["keep"])
        res = store_cli("--json", "forget", "--dry-run", *flags, env=fast)
        assert res.code == 0, res.stderr
        [ours] = json.loads(res.out)["groups"]
        assert sorted(s["time"][:19] for s in ours["keep"]) == theirs, flags
        assert {m for s in ours["keep"] for m in s["matches"]} == \
            {m for r in group["reasons"] for m in r["matches"]}, flags
    # and for real: what is left is what restic keeps
    flags = POLICIES[-2]
    [group] = json.loads(restic(env, "forget", "--json", *flags))
    assert store_cli("forget", *flags, env=fast).code == 0
    assert [t[:19] for t in _times(store_cli)] == sorted(s["time"][:19] for s in group["keep"])
