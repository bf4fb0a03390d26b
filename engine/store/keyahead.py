"""A head start on the passphrase's key derivation: Argon2id (~0.1 s of a core) runs while the
store is being reached, not after.

Opening a store reads its key file first, and only then can Argon2id start; on Object
Storage, reaching the store means importing boto3 and building its client, ~0.2 s of one
core. Argon2id releases the GIL, so when this machine opened the same store URL before, the
derivation starts at once in a thread with the parameters the key file had then, and the
open takes its result if the key file still has them (else derives anew: a changed
passphrase costs one derivation, as before).

What is remembered, per store URL, is the key file's Argon2id parameters: salt, iterations,
memory, lanes. None of it is secret (the key file holds them in the clear, beside the wrapped
key); neither the passphrase nor any key is ever written.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from concurrent.futures import Future
from pathlib import Path

import platformdirs

from engine.store.crypto import KdfParams


def _path(url: str) -> Path:
    name = hashlib.sha256(url.encode()).hexdigest()[:32]
    return Path(platformdirs.user_cache_dir("strongroom")) / "kdf" / f"{name}.json"


def _recalled(url: str) -> KdfParams | None:
    try:
        doc = json.loads(_path(url).read_text())
        return KdfParams(base64.b64decode(doc["salt"]), int(doc["iterations"]),
                         int(doc["memory_kib"]), int(doc["lanes"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


_started: dict[str, "KeyAhead"] = {}
_started_lock = threading.Lock()


def start(url: str, passphrase: str) -> None:
    """Begin the derivation for ``url`` now, for the next ``Store.open`` of it in this process
    to take: a driver that knows the store and its passphrase before it has imported the
    store's modules (~65 ms) calls this first."""
    with _started_lock:
        if url not in _started:
            _started[url] = KeyAhead(url, passphrase)


def take(url: str, passphrase: str) -> "KeyAhead":
    """The derivation started for ``url`` with this passphrase, else one started now."""
    with _started_lock:
        ahead = _started.pop(url, None)
    if ahead is not None and ahead._passphrase == passphrase:
        return ahead
    return KeyAhead(url, passphrase)


class KeyAhead:
    """The key derivation for one store URL, started early when its parameters are known."""

    def __init__(self, url: str, passphrase: str) -> None:
        self.url = url
        self._passphrase = passphrase  # only to tell whether take() may reuse this one
        self.params = _recalled(url)
        self._kek: Future[bytes] = Future()
        if self.params is not None:
            threading.Thread(target=self._derive, args=(self.params, passphrase),
                             name="strongroom-kdf", daemon=True).start()

    def _derive(self, params: KdfParams, passphrase: str) -> None:
        try:
            self._kek.set_result(params.derive(passphrase))
        except BaseException as exc:  # handed to kek(), which then derives in the caller
            self._kek.set_exception(exc)

    def kek(self, params: KdfParams) -> bytes | None:
        """The key-encryption key for ``params`` if it was derived ahead, else None (and these
        parameters are remembered for the next open)."""
        if params == self.params:
            try:
                return self._kek.result()
            except Exception:
                return None
        remember(self.url, params)
        return None


def remember(url: str, params: KdfParams) -> None:
    """Keep ``params`` for the next open of ``url`` (``init`` calls it too: the first backup
    into a new store gets the head start)."""
    path = _path(url)
    doc = {"salt": base64.b64encode(params.salt).decode(), "iterations": params.iterations,
           "memory_kib": params.memory_kib, "lanes": params.lanes}
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc) + "\n")
        os.replace(tmp, path)
    except OSError:  # a head start only: an unwritable cache costs the next open 0.1 s
        try:
            tmp.unlink()
        except OSError:
            pass
