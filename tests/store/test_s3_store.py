"""The store on Object Storage, through the sandbox's S3 (moto behind the fault proxy, SigV4
checked): only the Scaleway profile configures it; buckets, regions, faults and locks."""
from __future__ import annotations

import json
import os
import time
import threading
import uuid
from pathlib import Path

import pytest

from tests.fixtures.store import make_image

NO_DAEMON = {"STRONGROOM_NO_DAEMON": "1"}


def _url(tag: str) -> tuple[str, str]:
    bucket = f"store-{tag}-{uuid.uuid4().hex[:8]}"
    return bucket, f"s3://{bucket}/team/store"


def _one_line(stderr: str) -> None:
    assert stderr.startswith("strongroom: error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr


def test_a_store_on_object_storage_needs_only_the_scaleway_profile(
        tmp_path: Path, scw_env: dict, sandbox, store_cli, monkeypatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    bucket, url = _url("plain")
    missing = store_cli("init", store=url)
    assert missing.code == 2
    _one_line(missing.stderr)
    assert f"bucket {bucket} does not exist" in missing.stderr
    assert "--create-bucket" in missing.stderr
    made = store_cli("init", "--create-bucket", store=url)
    assert made.code == 0, made.stderr
    direct = sandbox.world.storage.client("fr-par")
    assert direct.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "fr-par"
    image = make_image(tmp_path / "a.img", 2_000_000, seed=3)
    backed = store_cli("--json", "backup-image", str(image), store=url, env=NO_DAEMON)
    assert backed.code == 0, backed.stderr
    out = tmp_path / "out.img"
    assert store_cli("restore-image", "latest", str(out), store=url, env=NO_DAEMON).code == 0
    assert out.read_bytes() == image.read_bytes()
    keys = [o["Key"] for o in direct.list_objects_v2(Bucket=bucket)["Contents"]]
    assert "team/store/config" in keys and any(k.startswith("team/store/packs/") for k in keys)
    denied = store_cli("snapshots", store=url, env={"SCW_ACCESS_KEY": sandbox.keys["nobucket"][0],
                                                    "SCW_SECRET_KEY": sandbox.keys["nobucket"][1]})
    assert denied.code == 2 and "refused" in denied.stderr
    _one_line(denied.stderr)


def test_the_profile_file_gives_keys_and_region_and_a_wrong_region_is_named(
        tmp_path: Path, scw_env: dict, sandbox, store_cli, monkeypatch) -> None:
    access, secret = sandbox.keys["full"]
    config = tmp_path / "scw.yaml"
    config.write_text(
        "profiles:\n  amsterdam:\n"
        f"    access_key: {access}\n    secret_key: {secret}\n"
        f"    default_organization_id: {scw_env['SCW_DEFAULT_ORGANIZATION_ID']}\n"
        f"    default_project_id: {scw_env['SCW_DEFAULT_PROJECT_ID']}\n"
        f"    default_region: nl-ams\n    default_zone: nl-ams-1\n"
        f"    api_url: {scw_env['SCW_API_URL']}\n")
    for name in ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_REGION", "SCW_DEFAULT_ZONE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SCW_CONFIG_PATH", str(config))
    bucket, url = _url("ams")
    made = store_cli("--profile", "amsterdam", "init", "--create-bucket", store=url)
    assert made.code == 0, made.stderr
    direct = sandbox.world.storage.client("nl-ams")
    assert direct.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "nl-ams"
    listed = store_cli("--profile", "amsterdam", "--json", "snapshots", store=url)
    assert listed.code == 0 and json.loads(listed.out) == []
    # the same bucket reached in fr-par (the environment's keys and region): one clear line
    wrong = store_cli("snapshots", store=url, env={
        "SCW_ACCESS_KEY": access, "SCW_SECRET_KEY": secret, "SCW_DEFAULT_REGION": "fr-par",
        "SCW_CONFIG_PATH": str(tmp_path / "none.yaml")})
    assert wrong.code == 2
    _one_line(wrong.stderr)
    assert "region nl-ams" in wrong.stderr and "region fr-par" in wrong.stderr


def test_backup_restore_and_check_go_through_429_503_and_dropped_connections(
        tmp_path: Path, scw_env: dict, sandbox_faults, store_cli) -> None:
    bucket, url = _url("faults")
    assert store_cli("init", "--create-bucket", store=url).code == 0
    image = make_image(tmp_path / "a.img", 6_000_000, seed=8, zero_every=0)
    proxy = sandbox_faults.world.storage.server.proxy
    before = (proxy.stats.refused, proxy.stats.reset)
    sandbox_faults.faults(s3_rate_429=0.15, s3_rate_503=0.15, s3_rate_drop=0.1)
    backed = store_cli("--json", "backup-image", str(image), store=url, env=NO_DAEMON)
    assert backed.code == 0, backed.stderr
    out = tmp_path / "out.img"
    # and bodies cut mid-way: the restore's streamed pack reads go on from where they broke
    dropped = proxy.stats.dropped
    sandbox_faults.faults(s3_rate_429=0.15, s3_rate_503=0.15, s3_rate_drop=0.1, drop_s3=3)
    restored = store_cli("restore-image", "latest", str(out), store=url, env=NO_DAEMON)
    assert restored.code == 0, restored.stderr
    assert out.read_bytes() == image.read_bytes()
    assert proxy.stats.dropped > dropped
    checked = store_cli("check", "--read-data", store=url, env=NO_DAEMON)
    assert checked.code == 0, checked.stderr
    # the faults did fire: refused requests and answers lost after the work was done
    assert proxy.stats.refused > before[0] and proxy.stats.reset > before[1]


def test_a_store_request_failing_for_good_is_one_error_and_leaves_nothing_that_looks_done(
        tmp_path: Path, scw_env: dict, sandbox_faults, store_cli, monkeypatch) -> None:
    from engine.store import Store
    from tests.fixtures.store import PASSPHRASE

    monkeypatch.setenv("STRONGROOM_KDF_MEMORY_KIB", "8192")
    bucket, url = _url("down")
    Store.init(url, PASSPHRASE, create_bucket=True).close()
    few = NO_DAEMON | {"STRONGROOM_S3_ATTEMPTS": "2"}
    done = 0
    # 17 MiB of random data: the lock (created, then created again: is If-None-Match
    # honoured?), two packs, the index delta, the snapshot. Object Storage stops taking writes
    # after the first pack, after both, after the index
    for writes in (3, 4, 5):
        image = make_image(tmp_path / f"{writes}.img", 17 * 1024 * 1024, seed=writes,
                           zero_every=0)
        sandbox_faults.faults(s3_fail_writes_after=writes)
        res = store_cli("--json", "backup-image", str(image), store=url, env=few)
        sandbox_faults.faults()
        with Store.open(url, PASSPHRASE) as store:
            ids = [s.id for s in store.snapshots()]
            report = store.check()
        # no index entry points at a pack that was not written, no snapshot at missing data
        assert report.ok, report.problems
        if res.code == 0:
            done += 1
            assert json.loads(res.out)["snapshot"] in ids
        else:
            assert res.code == 1
            _one_line(res.stderr)
            assert "failed 2 times" in res.stderr and "ServiceUnavailable" in res.stderr
        assert len(ids) == done  # no snapshot of a failed backup
    assert done < 3
    # what the failed backups left is reused: the same data backs up, and restores
    res = store_cli("--json", "backup-image", str(tmp_path / "4.img"), store=url, env=NO_DAEMON)
    assert res.code == 0, res.stderr
    out = tmp_path / "4.out"
    assert store_cli("restore-image", json.loads(res.out)["snapshot"], str(out), store=url,
                     env=NO_DAEMON).code == 0
    assert out.read_bytes() == (tmp_path / "4.img").read_bytes()


# ---- conditional writes and locks, on the sandbox's moto ------------------------------------

def _backend(url: str, **kwargs: object):
    from engine.store.backends.s3 import S3Backend

    backend = S3Backend(url, create_bucket=True, **kwargs)  # type: ignore[arg-type]
    backend.create()
    return backend


def test_moto_honours_if_none_match_and_an_exclusive_put_never_overwrites(
        scw_env: dict, sandbox_faults) -> None:
    _, url = _url("cond")
    backend = _backend(url)
    assert backend.conditional_writes is None  # found out at the first exclusive put
    backend.put("config", b"first", exclusive=True)
    assert backend.conditional_writes is True  # moto 5 refuses the second create (412)
    with pytest.raises(FileExistsError):
        _backend(url).put("config", b"second", exclusive=True)
    assert backend.get("config") == b"first"
    # an answer lost after the create was done: the retry's 412 is our own object, no conflict
    sandbox_faults.faults(s3_rate_drop=1.0)
    with pytest.raises(Exception):
        _backend(url, conditional_writes=True, retry=_quick(1)).put("a", b"x", exclusive=True)
    sandbox_faults.faults()
    backend.put("a", b"x", exclusive=True)
    assert backend.get("a") == b"x"


def _quick(attempts: int):
    from engine.retry import RetryPolicy

    return RetryPolicy(attempts=attempts, base=0.01, cap=0.05)


def test_a_server_that_ignores_if_none_match_is_found_out_and_the_fallback_holds(
        scw_env: dict, sandbox_faults) -> None:
    from engine.store import locks

    _, url = _url("nocond")
    sandbox_faults.faults(s3_ignore_conditional=True)
    backend = _backend(url)
    backend.put("keys/default", b"mine", exclusive=True)
    assert backend.conditional_writes is False
    with pytest.raises(FileExistsError):   # the fallback looks before it writes
        _backend(url, conditional_writes=False).put("keys/default", b"theirs", exclusive=True)
    assert backend.get("keys/default") == b"mine"
    # a lock removed by another process is not re-created by its refresh: it is lost
    lock = locks.StoreLock(backend, exclusive=False).acquire()
    lock._stop.set()
    backend.delete(lock.name)
    with pytest.raises(Exception) as caught:
        backend.replace(lock.name, b"{}")
    assert type(caught.value).__name__ == "NotFound"
    assert backend.stat(lock.name) is None


@pytest.mark.parametrize("conditional", [True, False], ids=["if-none-match", "fallback"])
def test_racing_exclusive_locks_never_both_hold(scw_env: dict, sandbox_faults,
                                                monkeypatch, conditional: bool) -> None:
    from engine.store import locks

    _, url = _url("race")
    if not conditional:
        sandbox_faults.faults(s3_ignore_conditional=True)
        monkeypatch.setattr(locks, "SETTLE_SECONDS", 0.2)
    backends = [_backend(url, conditional_writes=conditional) for _ in range(3)]
    for rnd in range(6):
        barrier, held, errors = threading.Barrier(len(backends)), [], []

        def contend(backend) -> None:
            barrier.wait()
            try:
                held.append(locks.StoreLock(backend, exclusive=True).acquire())
            except locks.LockedError:
                pass
            except Exception as exc:  # pragma: no cover - shown by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(b,)) for b in backends]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert len(held) <= 1, f"round {rnd}: {len(held)} exclusive locks held at once"
        for lock in held:
            lock.release()
    assert [s.name for s in backends[0].list("locks/")] == []


def test_a_lock_refreshed_on_s3_after_its_removal_is_lost(scw_env: dict, sandbox_faults,
                                                          monkeypatch) -> None:
    from engine.store import locks

    monkeypatch.setattr(locks, "REFRESH_SECONDS", 0.05)
    _, url = _url("lost")
    backend = _backend(url)
    lock = locks.StoreLock(backend, exclusive=False).acquire()
    assert backend.conditional_writes is True
    lock.check()
    _backend(url).delete(lock.name)  # another process judged it stale
    deadline = threading.Event()
    for _ in range(100):
        if lock._lost is not None:
            break
        deadline.wait(0.05)
    with pytest.raises(locks.LockLost, match="removed by another process"):
        lock.check()
    lock.release()
    assert backend.stat(lock.name) is None  # never re-created


def test_the_store_s3_faults_can_be_set_through_the_admin_endpoint(sandbox_faults) -> None:
    import urllib.request

    body = json.dumps({"s3_rate_503": 0.5, "s3_ignore_conditional": True}).encode()
    req = urllib.request.Request(f"{sandbox_faults.api_url}/_sandbox/faults", data=body,
                                 method="POST")
    with urllib.request.urlopen(req) as resp:
        doc = json.loads(resp.read())
    assert doc["s3_rate_503"] == 0.5 and doc["s3_ignore_conditional"] is True
    proxy = sandbox_faults.world.storage.server.proxy
    assert proxy.faults.rate_503 == 0.5 and proxy.faults.ignore_conditional is True


class _LaggingListing:
    """A fake at our own boundary: a real local backend whose listing shows a file only
    ``lag`` seconds after it was written, and that has no conditional writes, as an S3 that is
    only eventually consistent."""

    conditional_writes = False

    def __init__(self, real: object, lag: float) -> None:
        self.real, self.lag, self.written = real, lag, {}

    def put(self, name: str, data: object, *, exclusive: bool = False) -> None:
        self.written[name] = time.monotonic()  # before: a listing meanwhile must not show it
        self.real.put(name, data, exclusive=exclusive)  # type: ignore[attr-defined]

    def list(self, prefix: str):
        now = time.monotonic()
        return [s for s in self.real.list(prefix)  # type: ignore[attr-defined]
                if now - self.written.get(s.name, 0.0) >= self.lag]

    def __getattr__(self, attr: str) -> object:
        return getattr(self.real, attr)


# without the pause, a lag longer than any scheduling delay under load makes the hazard certain
@pytest.mark.parametrize(("settle", "lag"), [(0.0, 30.0), (1.5, 1.0)])
def test_the_second_look_catches_a_rival_that_a_lagging_listing_hid(
        tmp_path: Path, monkeypatch, settle: float, lag: float) -> None:
    from engine.store import locks
    from engine.store.backends import LocalBackend

    monkeypatch.setattr(locks, "SETTLE_SECONDS", settle)
    real = LocalBackend(str(tmp_path / "store"))
    real.create()
    shared = _LaggingListing(real, lag=lag)
    barrier, held = threading.Barrier(2), []

    def contend() -> None:
        barrier.wait()
        try:
            held.append(locks.StoreLock(shared, exclusive=True).acquire())  # type: ignore[arg-type]
        except locks.LockedError:
            pass

    threads = [threading.Thread(target=contend) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for lock in held:
        lock.release()
    if settle:
        assert len(held) <= 1  # the pause outlasts the lag: both see each other, one backs off
    else:
        assert len(held) == 2  # without it the hazard is real: both would hold


def test_a_backup_on_s3_whose_lock_is_removed_stops_and_commits_nothing(
        scw_env: dict, sandbox_faults, monkeypatch) -> None:
    from engine.errors import OperationError
    from engine.store import Store, locks
    from tests.fixtures.store import PASSPHRASE
    from tests.store.test_hygiene import _SlowSource

    monkeypatch.setenv("STRONGROOM_KDF_MEMORY_KIB", "8192")
    monkeypatch.setattr(locks, "REFRESH_SECONDS", 0.1)
    _, url = _url("lostbackup")
    Store.init(url, PASSPHRASE, create_bucket=True).close()
    other = _backend(url)
    source = _SlowSource(48 << 20, pause=0.05)  # ~2.5 s to read it all: refreshes see the loss

    def remove_the_lock() -> None:  # another process judging it stale
        deadline = time.monotonic() + 30  # a loaded machine may start the backup late
        while time.monotonic() < deadline:
            names = [s.name for s in other.list("locks/")]
            if names:
                other.delete(names[0])
                return
            time.sleep(0.01)

    remover = threading.Thread(target=remove_the_lock)
    with Store.open(url, PASSPHRASE) as store:
        remover.start()
        with pytest.raises(OperationError) as caught:
            store.backup(source, name="unlocked")
    remover.join(5)
    message = str(caught.value)
    assert message.startswith("lost the store lock") and "removed by another process" in message
    assert source.pos < source.size  # it stopped, not ran on to the end
    with Store.open(url, PASSPHRASE) as store:
        assert store.snapshots() == []
    assert [s.name for s in other.list("locks/")] == []  # and it was not re-created


def test_a_slow_link_sends_bodies_no_faster_than_set(scw_env: dict, sandbox_faults) -> None:
    """``s3_mib_per_s`` (the demo's and the screenshots' slow link): a 2 MiB body at 8 MiB/s
    takes at least a quarter of a second, and comes whole; without it, it is not held back."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=scw_env["STRONGROOM_S3_ENDPOINT"], region_name="fr-par",
                      aws_access_key_id=scw_env["SCW_ACCESS_KEY"],
                      aws_secret_access_key=scw_env["SCW_SECRET_KEY"])
    bucket = f"slow-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "fr-par"})
    body = os.urandom(2 << 20)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    timings = {}
    for speed in (8.0, 0.0):
        sandbox_faults.faults(s3_mib_per_s=speed)
        started = time.monotonic()
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
        timings[speed] = time.monotonic() - started
    assert timings[8.0] >= 0.25
    assert timings[0.0] < timings[8.0]


def test_a_pack_needed_whole_is_one_open_ended_get_and_a_shared_one_a_span(
        tmp_path: Path, scw_env: dict, sandbox_faults, store_cli, fast_kdf) -> None:
    """Restoring B, whose first half is A's: A's pack is needed in part, so it is read as a
    bounded span; B's own pack is needed whole, so it is asked from 0 to its end (a server
    that cuts ranges out of the object then copies nothing), trailer included, and a body
    cut mid-way goes on from where it broke."""
    from engine.store import prefetch, restorer
    from engine.store.backends import s3 as s3mod
    from engine.store.store import Store
    from tests.fixtures.store import PASSPHRASE

    _bucket, url = _url("whole")
    assert store_cli("init", "--create-bucket", store=url).code == 0
    a = make_image(tmp_path / "a.img", 4_000_000, seed=21, zero_every=0)
    b = tmp_path / "b.img"
    b.write_bytes(a.read_bytes()[:2_000_000] + make_image(tmp_path / "c.img", 2_000_000,
                                                          seed=22, zero_every=0).read_bytes())
    for image in (a, b):
        assert store_cli("backup-image", str(image), store=url, env=NO_DAEMON).code == 0
    asked: list[tuple[str, int, int | None]] = []
    real = s3mod.S3Backend._open_body

    def record(self, name: str, start: int, end: int | None):  # type: ignore[no-untyped-def]
        asked.append((name, start, end))
        return real(self, name, start, end)

    proxy = sandbox_faults.world.storage.server.proxy
    dropped = proxy.stats.dropped
    sandbox_faults.faults(s3_rate_drop=0.3, drop_s3=2)
    out = tmp_path / "out.img"
    with Store.open(url, PASSPHRASE) as store:
        snap = store.resolve("latest")
        reader = store._reader()
        ids, lengths = reader.read_tree(store._manifest(snap.id).trees[0])
        runs = prefetch.plan(reader, ids, lengths, 0)
        whole = {r.pack for r in runs if r.whole}
        assert len(runs) == 2 and len(whole) == 1  # B's pack whole, A's in part
        s3mod.S3Backend._open_body = record  # type: ignore[method-assign]
        try:
            with store._lock(exclusive=False):
                restorer.restore_to_path(reader, store._manifest(snap.id), out, None, None)
        finally:
            s3mod.S3Backend._open_body = real  # type: ignore[method-assign]
    assert out.read_bytes() == b.read_bytes()
    packs = [entry for entry in asked if entry[0].startswith("packs/")]
    first = {}
    for name, start, end in packs:
        first.setdefault(name, (start, end))
    assert sorted(end is None for _start, end in first.values()) == [False, True]
    assert all(start == 0 for start, end in first.values() if end is None)
    assert proxy.stats.dropped > dropped and len(packs) > 2  # cut, and asked again from there
