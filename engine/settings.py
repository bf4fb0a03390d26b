"""Strongroom's own settings: a small TOML file under the platform's config dir.

Never a secret here: Scaleway credentials stay in Scaleway's own config file and variables.
Kept apart from the Scaleway connector so reading settings costs no SDK import.
"""
from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs
import tomlkit
from tomlkit.toml_document import TOMLDocument

from engine.errors import UsageError

APP_NAME = "strongroom"


def default_bucket(region: str) -> str:
    return f"strongroom-staging-{region}"


_BUCKET_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


def store_url_problem(url: str) -> str:
    """Why ``url`` cannot name a store ("" if it can): a directory path, ``file://path`` or
    ``s3://bucket/prefix`` with a valid bucket name (3–63 lowercase letters, digits, dots,
    dashes; a letter or digit at each end). Checked without touching the network."""
    if url.startswith("s3://"):
        bucket = url.removeprefix("s3://").partition("/")[0]
        if not bucket:
            return "an S3 store needs a bucket: s3://bucket/prefix"
        if not (3 <= len(bucket) <= 63 and set(bucket) <= _BUCKET_CHARS
                and bucket[0].isalnum() and bucket[-1].isalnum()):
            return (f"{bucket!r} is not a bucket name: 3 to 63 lowercase letters, digits, dots "
                    "and dashes, a letter or digit at each end")
        return ""
    if "://" in url and not url.startswith("file://"):
        return "a store is a directory path or s3://bucket/prefix"
    return ""


@dataclass
class Settings:
    """Strongroom's own settings. Never a secret: credentials stay in Scaleway's config."""

    store_url: str = ""
    buckets: dict[str, str] = field(default_factory=dict)  # region → staging bucket
    environment: str = ""
    data_class: str = ""
    keep_temporaries: bool = False
    theme: str = ""
    # Read by engine.policies (which checks them, naming the file's lines): raw TOML tables.
    labels: dict[str, Any] = field(default_factory=dict)
    policies: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    path: str = field(default="", compare=False)  # the file these came from, if any

    def bucket_for(self, region: str) -> str:
        return self.buckets.get(region) or default_bucket(region)


def settings_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "settings.toml"


def load_settings(path: Path | None = None) -> Settings:
    path = path or settings_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read settings {path}: {exc}; fix or delete the file") from None
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
    values["buckets"] = {str(k): str(v) for k, v in (values.get("buckets") or {}).items()}
    for name in ("store_url", "environment", "data_class", "theme"):
        values[name] = str(values.get(name, ""))
    values["keep_temporaries"] = bool(values.get("keep_temporaries", False))
    for name in ("labels", "policies", "run"):
        values[name] = dict(values.get(name) or {}) if isinstance(values.get(name), dict) \
            else {"": values[name]} if name in values else {}
    values["path"] = str(path)
    return Settings(**values)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write atomically: a temp file in the same directory, then rename over the old one.

    The file is updated in place (tomlkit), not rewritten: its comments, the order of its keys
    and whatever this version does not know (a newer one's keys) are kept, so an operator's
    notes in ``[policies]`` survive a theme chosen in the app. Tables the settings did not
    change are left exactly as written."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = _document(path)
    for name in ("store_url", "environment", "data_class", "keep_temporaries", "theme"):
        value = _plain(getattr(settings, name))
        if doc.get(name) != value:
            doc[name] = value
    _update_buckets(doc, {str(k): str(v) for k, v in sorted(settings.buckets.items())})
    for name in ("labels", "policies", "run"):
        value = getattr(settings, name)
        if name in doc and _unwrap(doc[name]) == value:
            continue  # as written, comments and all
        if name in doc:
            del doc[name]
        if value:
            doc[name] = value
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tomlkit.dumps(doc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _document(path: Path) -> TOMLDocument:
    """The file as tomlkit holds it (a new document if there is none, or none readable: an
    unreadable file is replaced, as load_settings tells the user it would be)."""
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.ParseError):
        return tomlkit.document()


def _update_buckets(doc: TOMLDocument, buckets: dict[str, str]) -> None:
    """``[buckets]`` key by key, so that a comment beside a region that did not change stays."""
    table = doc.get("buckets")
    if not isinstance(table, dict):
        if "buckets" in doc:
            del doc["buckets"]
        doc["buckets"] = buckets
        return
    for region in [r for r in table if r not in buckets]:
        del table[region]
    for region, bucket in buckets.items():
        if table.get(region) != bucket:
            table[region] = bucket


def _unwrap(item: object) -> object:
    unwrap = getattr(item, "unwrap", None)
    return unwrap() if unwrap is not None else item


def _plain(value: Any) -> bool | str:
    """What the file holds: booleans as booleans, anything else (a Path, say) as its text."""
    return value if isinstance(value, bool) else str(value)
