"""Store hygiene: what a crash or a failing store leaves behind, and what comes after it.

A killed ``init`` leaves a folder that ``init`` finishes; ``.tmp-*`` files of killed writers are
cleaned by the next writer and reported by check; a lock that cannot be refreshed stops the
operation holding it."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from engine.errors import OperationError, UsageError
from engine.store import Store, locks
from tests.fixtures.store import PASSPHRASE, REPO_ROOT

# Runs Store.init in a process that SIGKILLs itself right after its n-th fsync: a real crash,
# no exception handler or finally clause runs.
_KILLED_INIT = """
import os, signal, sys
from engine.store import Store
left = int(sys.argv[2])
real_fsync = os.fsync
def fsync(fd):
    global left
    real_fsync(fd)
    left -= 1
    if left == 0:
        os.kill(os.getpid(), signal.SIGKILL)
os.fsync = fsync
Store.init(sys.argv[1], "first passphrase")
"""


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


# fsync 1: the key file's temp is written; 2: the key file is in place; 3: the config's temp is
# written; 4: the config is in place (the store is complete).
@pytest.mark.parametrize("kill_after", [1, 2, 3, 4])
def test_init_killed_at_any_point_leaves_a_folder_init_finishes(tmp_path: Path, fast_kdf: None,
                                                                kill_after: int) -> None:
    store = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-c", _KILLED_INIT, str(store), str(kill_after)],
                          cwd=REPO_ROOT, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    if kill_after == 4:  # the config was in place: a store, whole
        with pytest.raises(UsageError, match="already exists"):
            Store.init(str(store), PASSPHRASE)
        Store.open(str(store), "first passphrase").close()
        return
    assert not (store / "config").exists()
    if (store / "keys" / "default").exists():
        # open says what to do...
        with pytest.raises(UsageError, match="never finished.*run 'strongroom init' again"):
            Store.open(str(store), "first passphrase")
    # ...and init does it: a new store, under the new passphrase, no leftovers.
    Store.init(str(store), PASSPHRASE).close()
    with Store.open(str(store), PASSPHRASE) as opened:
        assert opened.snapshots() == []
    assert _temps(store) == []


def test_init_still_refuses_a_folder_with_anything_else(tmp_path: Path, fast_kdf: None) -> None:
    store = tmp_path / "store"
    (store / "keys").mkdir(parents=True)
    (store / "keys" / "default").write_text("{}")
    (store / "packs").mkdir()
    (store / "packs" / "ab").write_bytes(b"data")  # a store that lost its config: keep it
    with pytest.raises(UsageError, match="not empty and not a store"):
        Store.init(str(store), PASSPHRASE)
    with pytest.raises(UsageError, match="not a strongroom store"):
        Store.open(str(store), PASSPHRASE)
    assert (store / "keys" / "default").read_text() == "{}"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="is empty, not a store yet.*strongroom init"):
        Store.open(str(empty), PASSPHRASE)


# Writes one store file in a process that SIGKILLs itself once the temp file is written, before
# it is renamed: what a writer killed mid-put leaves.
_KILLED_PUT = """
import os, signal, sys
from engine.store.backends import LocalBackend
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
LocalBackend(sys.argv[1]).put("packs/ab/" + "ab" * 32, b"x" * 100_000)
"""


def test_temp_files_of_killed_writers_are_reported_then_removed(tmp_path: Path, store_dir: Path,
                                                                store_cli) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_PUT, str(store_dir)], cwd=REPO_ROOT)
    assert proc.wait() == -signal.SIGKILL
    [dead] = _temps(store_dir)  # its name says whose it was
    assert dead.parent == store_dir / "packs" / "ab"
    assert dead.name.endswith(f"-{proc.pid}@{_host()}")
    # A writer of this process (running), a temp of unknown origin written just now, and one
    # left for hours: only the last is known to be a dead writer's besides the killed one.
    running = store_dir / "index" / f".tmp-{'cd' * 32}-0123abcd-{os.getpid()}@{_host()}"
    running.parent.mkdir(exist_ok=True)
    running.write_bytes(b"y")
    recent = store_dir / "packs" / ".tmp-deadbeef-0000"
    recent.write_bytes(b"partial")
    old = store_dir / ".tmp-config-1111"
    old.write_bytes(b"z")
    os.utime(old, (os.path.getmtime(old) - 3 * 3600,) * 2)
    with Store.open(str(store_dir), PASSPHRASE) as store:
        # check sees them all, as warnings, not damage
        report = store.check()
        assert report.ok and report.problems == []
        warned = {w.split()[3]: w for w in report.warnings}
        assert set(warned) == {str(p.relative_to(store_dir)) for p in (dead, running, recent,
                                                                        old)}
        assert "writer is gone" in warned[str(dead.relative_to(store_dir))]
        assert "writer is gone" in warned[".tmp-config-1111"]
        assert "may still be running" in warned[str(recent.relative_to(store_dir))]
        # a writer removes the dead writers' temps, and only those
        image = tmp_path / "a.img"
        image.write_bytes(os.urandom(200_000))
        with open(image, "rb") as source:
            store.backup(source, name="a")
        assert sorted(_temps(store_dir)) == sorted([running, recent])
        assert len(store.check().warnings) == 2


def _host() -> str:
    from engine.store.backends.local import _host_for_name

    return _host_for_name()


# ---------------------------------------------------------------------------------------------
# A lock that cannot be refreshed stops the operation (restic's rule), whatever the failure.

class _LockRefreshFails:
    """The real backend, except that rewriting a lock file (a refresh) raises ``error``, as an
    S3 store's backend does when the endpoint fails: botocore's errors are not OSError."""

    def __init__(self, real: object, error: Exception) -> None:
        self.real, self.error, self.lock_puts = real, error, 0
        self.failed = threading.Event()

    def put(self, name: str, data: object, *, exclusive: bool = False) -> None:
        if name.startswith("locks/"):
            self.lock_puts += 1
            if self.lock_puts > 1:
                self.failed.set()
                raise self.error
        self.real.put(name, data, exclusive=exclusive)  # type: ignore[attr-defined]

    def replace(self, name: str, data: object) -> None:  # a refresh: fails as a rewrite does
        self.put(name, data)

    def __getattr__(self, attr: str) -> object:
        return getattr(self.real, attr)


class _SlowSource(io.RawIOBase):
    """``size`` bytes (one random MiB over and over) read at a steady pace."""

    def __init__(self, size: int, pause: float) -> None:
        self.size, self.pause, self.pos = size, pause, 0
        self.block = os.urandom(1 << 20)

    def readable(self) -> bool:
        return True

    def readinto(self, b: object) -> int:
        time.sleep(self.pause)
        out = memoryview(b).cast("B")  # type: ignore[arg-type]
        n = min(len(out), len(self.block), self.size - self.pos)
        out[:n] = self.block[:n]
        self.pos += n
        return n


class _SlowSink(io.RawIOBase):
    def __init__(self, pause: float) -> None:
        self.pause, self.written = pause, 0

    def writable(self) -> bool:
        return True

    def write(self, b: object) -> int:
        time.sleep(self.pause)
        self.written += len(memoryview(b))  # type: ignore[arg-type]
        return len(memoryview(b))  # type: ignore[arg-type]


_REFRESH_ERRORS = [
    ClientError({"Error": {"Code": "InternalError", "Message": "We encountered an internal "
                           "error"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "PutObject"),
    EndpointConnectionError(endpoint_url="https://s3.fr-par.scw.cloud/backups/locks/x"),
]


@pytest.mark.parametrize("error", _REFRESH_ERRORS, ids=lambda e: type(e).__name__)
def test_a_backup_that_loses_its_lock_stops_and_records_no_snapshot(
        store_dir: Path, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    monkeypatch.setattr(locks, "REFRESH_SECONDS", 0.05)
    source = _SlowSource(128 << 20, pause=0.005)  # ~0.7 s to read it all
    with Store.open(str(store_dir), PASSPHRASE) as store:
        store.backend = _LockRefreshFails(store.backend, error)  # type: ignore[assignment]
        with pytest.raises(OperationError) as caught:
            store.backup(source, name="unlocked")
    message = str(caught.value)
    assert message.startswith("lost the store lock (refreshing locks/")
    assert type(error).__name__ in message and "\n" not in message
    assert source.pos < source.size  # it stopped, not ran on to the end
    assert list((store_dir / "snapshots").glob("*")) == []
    assert list((store_dir / "locks").iterdir()) == []  # and let go of its lock file
    with Store.open(str(store_dir), PASSPHRASE) as store:
        assert store.snapshots() == []


def test_a_restore_that_loses_its_lock_stops(store_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(str(store_dir), PASSPHRASE) as store:
        snap = store.backup(_SlowSource(64 << 20, pause=0), name="a").snapshot
    monkeypatch.setattr(locks, "REFRESH_SECONDS", 0.05)
    sink = _SlowSink(pause=0.1)  # 16 MiB segments: about 0.4 s for the image
    with Store.open(str(store_dir), PASSPHRASE) as store:
        failing = _LockRefreshFails(store.backend, _REFRESH_ERRORS[0])
        store.backend = failing  # type: ignore[assignment]
        with pytest.raises(locks.LockLost, match="lost the store lock.*ClientError"):
            store.restore(snap.id, sink)
    assert sink.written < snap.bytes


def test_a_check_that_loses_its_lock_stops(store_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(str(store_dir), PASSPHRASE) as store:
        store.backup(_SlowSource(1 << 20, pause=0), name="a")
    monkeypatch.setattr(locks, "REFRESH_SECONDS", 0.01)
    with Store.open(str(store_dir), PASSPHRASE) as store:
        failing = _LockRefreshFails(store.backend, _REFRESH_ERRORS[1])
        real_list = failing.real.list

        def list_after_the_failure(prefix: str):  # the check starts once the lock is lost
            if prefix == "packs/":
                assert failing.failed.wait(5)
                time.sleep(0.05)  # the refresher records why
            return real_list(prefix)

        failing.list = list_after_the_failure  # type: ignore[method-assign]
        store.backend = failing  # type: ignore[assignment]
        with pytest.raises(locks.LockLost, match="EndpointConnectionError"):
            store.check()


def test_a_lock_removed_by_another_process_is_lost(store_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locks, "REFRESH_SECONDS", 0.02)
    with Store.open(str(store_dir), PASSPHRASE) as store:
        lock = locks.StoreLock(store.backend, exclusive=False).acquire()
        lock.check()  # held
        store.backend.delete(lock.name)  # what a process that judged it stale does
        deadline = time.monotonic() + 5
        while lock._lost is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(locks.LockLost, match="removed by another process"):
            lock.check()
        lock.release()
        assert list((store_dir / "locks").iterdir()) == []  # not re-created by the refresher
    # and one not refreshed for longer than others wait is lost too
    late = locks.StoreLock(store.backend, exclusive=False)
    late._refreshed -= locks.STALE_SECONDS + 1
    with pytest.raises(locks.LockLost, match="not refreshed for 30 minutes"):
        late.check()


def test_the_check_command_shows_leftover_temps_as_warnings(store_dir: Path, store_cli) -> None:
    old = store_dir / ".tmp-config-2222"
    old.write_bytes(b"z")
    os.utime(old, (os.path.getmtime(old) - 3 * 3600,) * 2)
    plain = store_cli("check")
    assert plain.code == 0, plain.stderr
    assert "warning:" in plain.out and ".tmp-config-2222" in plain.out
    doc = json.loads(store_cli("--json", "check").out)
    assert doc["ok"] is True and any(".tmp-config-2222" in w for w in doc["warnings"])


def test_lock_files_seal_who_holds_them(store_dir: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    """Host and pid are sealed (FORMAT.md §11); what a stale-lock check needs still works, by
    time for anyone and by a gone process of this host for whoever holds the key."""
    import socket
    with Store.open(str(store_dir), PASSPHRASE) as store:
        lock = locks.StoreLock(store.backend, exclusive=True, sealer=store.sealer).acquire()
        raw = (store_dir / lock.name).read_bytes()
        doc = json.loads(raw)
        assert socket.gethostname().encode() not in raw and str(os.getpid()).encode() not in raw
        assert "host" not in doc and "pid" not in doc
        assert doc["exclusive"] is True and doc["version"] == 3 and doc["time"] > 0
        with pytest.raises(locks.LockedError, match=f"pid {os.getpid()} on "):
            locks.StoreLock(store.backend, exclusive=False, sealer=store.sealer).acquire()
        lock._stop.set()
        lock._thread.join()
        # its process gone: stale for whoever can open it, deleted on the way
        monkeypatch.setattr(locks, "process_gone", lambda host, pid:
                            host == socket.gethostname() and pid == os.getpid())
        assert locks.live_locks(store.backend) != []  # without the key: only time tells
        assert locks.live_locks(store.backend, store.sealer) == []
        assert not (store_dir / lock.name).exists()
