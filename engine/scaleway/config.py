"""Scaleway credentials (read exactly as the Scaleway CLI and SDK read them) and Strongroom's own
settings (a small TOML file under the platform's config dir, never holding a secret)."""
from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs
from scaleway import Client

from engine.errors import UsageError

APP_NAME = "strongroom"
ZONES: tuple[str, ...] = ("fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "nl-ams-3",
                          "pl-waw-1", "pl-waw-2", "pl-waw-3")
DEFAULT_REGION, DEFAULT_ZONE = "fr-par", "fr-par-1"
HOW_TO_SET = ("set SCW_ACCESS_KEY and SCW_SECRET_KEY, or run `scw init` to write "
              "~/.config/scw/config.yaml (pick a profile with --profile or SCW_PROFILE)")


def region_of(zone: str) -> str:
    """fr-par-1 → fr-par."""
    return zone.rsplit("-", 1)[0]


def scw_config_path() -> Path:
    """Where the Scaleway CLI keeps its config: $SCW_CONFIG_PATH, else ~/.config/scw/config.yaml."""
    return Path(Client.get_default_config_file_path())


def scw_client(profile: str | None = None) -> Client:
    """The SDK client for ``profile`` (else $SCW_PROFILE, else "default"): config file, then
    ``SCW_*`` variables over it, as the SDK itself does. UsageError if credentials are missing."""
    name = profile or os.environ.get("SCW_PROFILE") or "default"
    path = scw_config_path()
    if path.is_file():
        try:
            client = Client.from_config_file_and_env(filepath=str(path), profile_name=name)
        except ValueError as exc:
            raise UsageError(f"cannot read Scaleway profile {name!r} from {path}: {exc}") from None
        if name != "default" and not _file_has_profile(path, name):
            raise UsageError(f"no Scaleway profile {name!r} in {path}: add it with "
                             f"`scw init -p {name}` or choose another with --profile")
    else:
        if profile:
            raise UsageError(f"no Scaleway config file at {path} for profile {profile!r}: "
                             f"{HOW_TO_SET}")
        client = Client.from_env()
    if not client.access_key or not client.secret_key:
        raise UsageError(f"no Scaleway credentials: {HOW_TO_SET}")
    client.default_region = client.default_region or DEFAULT_REGION
    client.default_zone = client.default_zone or DEFAULT_ZONE
    try:
        client.validate()
    except ValueError as exc:
        # The SDK's own message can hold the bad key; keep only what is safe to show.
        text = str(exc)
        if client.secret_key and client.secret_key in text:
            text = text.replace(client.secret_key, "<secret>")
        raise UsageError(f"invalid Scaleway configuration: {text}") from None
    return client


def _file_has_profile(path: Path, name: str) -> bool:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return False
    return name in (data.get("profiles") or {})


def s3_endpoint(region: str) -> str:
    return os.environ.get("STRONGROOM_S3_ENDPOINT") or f"https://s3.{region}.scw.cloud"


def default_bucket(region: str) -> str:
    return f"strongroom-staging-{region}"


@dataclass
class Settings:
    """Strongroom's own settings. Never a secret: credentials stay in Scaleway's config."""

    store_url: str = ""
    buckets: dict[str, str] = field(default_factory=dict)  # region → staging bucket
    environment: str = ""
    data_class: str = ""
    keep_temporaries: bool = False
    theme: str = ""

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
    return Settings(**values)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write atomically: a temp file in the same directory, then rename over the old one."""
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name} = {_toml_value(getattr(settings, name))}"
             for name in ("store_url", "environment", "data_class", "keep_temporaries", "theme")]
    lines += ["", "[buckets]"]
    lines += [f"{_toml_string(k)} = {_toml_string(v)}" for k, v in sorted(settings.buckets.items())]
    fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
