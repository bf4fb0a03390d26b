"""The key derivation's head start: a store opened before derives its key in a thread while
it is being reached; what is remembered for that is never secret, and a stale or damaged
memory costs time, never an open."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from engine.errors import UsageError
from engine.store import crypto, keyahead
from engine.store.store import Store

PASSPHRASE = "keyahead test passphrase"


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The thread that ran each Argon2id derivation."""
    seen: list[str] = []
    real = crypto._kek

    def counted(*args: object) -> bytes:
        seen.append(threading.current_thread().name)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(crypto, "_kek", counted)
    return seen


def _remembered(tmp_path: Path) -> list[Path]:
    return sorted(Path(os.environ["XDG_CACHE_HOME"]).rglob("kdf/*.json"))


def test_an_open_after_init_derives_ahead_and_nothing_secret_is_written(
        tmp_path: Path, fast_kdf: None, derivations: list[str]) -> None:
    url = str(tmp_path / "store")
    Store.init(url, PASSPHRASE).close()
    # init remembers its key file's parameters: the first backup into a new store (what
    # bench/compare.py times) gets the head start too
    [memory] = _remembered(tmp_path)
    derivations.clear()
    with Store.open(url, PASSPHRASE) as first:
        master = first.keys.master
    assert derivations == ["strongroom-kdf"]  # once, ahead, and its result was taken
    text = memory.read_text()
    key_file = json.loads((Path(url) / "keys" / "default").read_bytes())
    assert set(json.loads(text)) == {"salt", "iterations", "memory_kib", "lanes"}
    assert json.loads(text)["salt"] == key_file["salt"]
    for secret in (PASSPHRASE, key_file["wrapped_key"], master.hex()):
        assert secret not in text


def test_an_open_with_nothing_remembered_derives_after_the_key_file(
        tmp_path: Path, fast_kdf: None, derivations: list[str]) -> None:
    url = str(tmp_path / "store")
    Store.init(url, PASSPHRASE).close()
    for memory in _remembered(tmp_path):
        memory.unlink()
    derivations.clear()
    with Store.open(url, PASSPHRASE) as first:
        master = first.keys.master
    assert derivations == ["MainThread"]
    derivations.clear()
    with Store.open(url, PASSPHRASE) as second:
        assert second.keys.master == master
    assert derivations == ["strongroom-kdf"]


def test_a_changed_passphrase_is_derived_anew_and_a_wrong_one_still_refused(
        tmp_path: Path, fast_kdf: None, derivations: list[str]) -> None:
    url = str(tmp_path / "store")
    Store.init(url, PASSPHRASE).close()
    with Store.open(url, PASSPHRASE) as store:
        store.change_passphrase("a new passphrase")
    derivations.clear()
    with Store.open(url, "a new passphrase"):
        pass
    # the remembered salt was the old key file's: its head start is wasted, not used
    assert derivations == ["strongroom-kdf", "MainThread"]
    with pytest.raises(UsageError, match="wrong passphrase"):
        Store.open(url, PASSPHRASE)
    with Store.open(url, "a new passphrase"):
        pass


def test_damaged_or_unwritable_memory_costs_only_time(tmp_path: Path, fast_kdf: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(tmp_path / "store")
    Store.init(url, PASSPHRASE).close()
    Store.open(url, PASSPHRASE).close()
    [memory] = _remembered(tmp_path)
    memory.write_text("{not json")
    Store.open(url, PASSPHRASE).close()
    assert json.loads(memory.read_text())["lanes"] == crypto.KDF_LANES  # rewritten
    # a cache that cannot be written (root ignores modes: a folder under /proc it is)
    monkeypatch.setattr(keyahead, "_path", lambda url: Path("/proc/no-such-dir/x.json"))
    Store.open(url, PASSPHRASE).close()


def test_stores_opened_in_parallel_threads_all_open(tmp_path: Path, fast_kdf: None) -> None:
    """Two Argon2id derivations at once in one process hung for good (OpenSSL's, through
    cryptography 50): the daemon's jobs open stores in parallel, and so does the head start."""
    urls = [str(tmp_path / f"store{i}") for i in range(3)]
    for url in urls:
        Store.init(url, PASSPHRASE).close()
    opened: list[bytes] = []

    def open_one(url: str) -> None:
        with Store.open(url, PASSPHRASE) as store:
            opened.append(store.keys.master)

    threads = [threading.Thread(target=open_one, args=(url,), daemon=True)
               for url in urls * 2]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert len(opened) == 6 and len(set(opened)) == 3


def test_a_derivation_started_before_the_open_is_the_one_it_takes(
        tmp_path: Path, fast_kdf: None, derivations: list[str]) -> None:
    """Session.store() starts the derivation before it imports the store's modules; the open
    that follows takes it, unless it was started with another passphrase."""
    url = str(tmp_path / "store")
    Store.init(url, PASSPHRASE).close()
    derivations.clear()
    keyahead.start(url, PASSPHRASE)
    with Store.open(url, PASSPHRASE):
        pass
    assert derivations == ["strongroom-kdf"]
    derivations.clear()
    keyahead.start(url, "not the passphrase")
    with pytest.raises(UsageError, match="wrong passphrase"):
        Store.open(url, "also wrong")
    assert len(derivations) == 2  # the one started for another passphrase was not reused


def test_the_key_derivation_imports_without_the_rest_of_the_store() -> None:
    """What lets Session.store() start Argon2id before importing the store (~65 ms)."""
    import subprocess
    import sys

    code = ("import json, sys, engine.store.keyahead\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('engine.store'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert json.loads(out) == ["engine.store", "engine.store.crypto", "engine.store.keyahead"]
