"""The daemon's protocol: newline-delimited JSON over its Unix socket.

A client sends one request a line, ``{"op": …, …}``; the daemon answers each with one line,
``{"ok": true, …}`` or ``{"ok": false, "error": "one line"}``. ``subscribe`` is then followed by
``{"event": {…}}`` lines (the job events of ``engine.jobs``) and, for one job, a last
``{"end": true}`` once it has finished.

Requests:
  hello                                    → pid, version, started, jobs running
  submit  spec, context                    → job (its id)
  list    all (bool)                       → jobs (summaries, newest first)
  events  job, since                       → events (the job's journal above ``since``)
  subscribe job (or null for all), since   → a stream of events
  cancel  job                              → cancelled (bool)
  stop                                     → the daemon cancels its jobs and exits
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from engine.jobs import JSON

MAX_LINE = 4 * 1024 * 1024
OPS = ("hello", "submit", "list", "events", "subscribe", "cancel", "stop")
# What decides which Scaleway account, settings file and S3 endpoint a job talks to.
ENV_KEYS_PREFIXES = ("SCW_", "STRONGROOM_S3_ENDPOINT", "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                     "XDG_DATA_HOME", "HOME")


class ProtocolError(Exception):
    """A line that is not a request we understand."""


@dataclass(frozen=True)
class JobContext:
    """What a job needs from the client that submitted it. The passphrase lives only in the
    daemon's memory: it is never logged, journaled or written anywhere."""

    store_url: str
    profile: str | None = None
    passphrase: str | None = None
    environment: str = ""  # env_fingerprint() of the client

    def to_dict(self) -> dict[str, JSON]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "JobContext":
        return cls(str(doc["store_url"]), doc.get("profile"), doc.get("passphrase"),
                   str(doc.get("environment", "")))

    def __repr__(self) -> str:  # never print the passphrase, even in a traceback
        return (f"JobContext(store_url={self.store_url!r}, profile={self.profile!r}, "
                f"environment={self.environment[:12]!r})")


def env_fingerprint(environ: Mapping[str, str] | None = None) -> str:
    """A digest of the variables that choose accounts and folders: a daemon runs jobs only
    for clients whose environment gives the same answer as its own."""
    environ = os.environ if environ is None else environ
    items = sorted((k, v) for k, v in environ.items() if k.startswith(ENV_KEYS_PREFIXES))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def encode(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def decode_request(line: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("not a JSON line") from None
    if not isinstance(doc, dict) or doc.get("op") not in OPS:
        raise ProtocolError(f"unknown request: give op, one of {', '.join(OPS)}")
    return doc
