"""Scaleway credentials, read exactly as the Scaleway CLI and SDK read them.

Strongroom's own settings live in ``engine.settings``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scaleway import Client

from engine.errors import UsageError

ZONES: tuple[str, ...] = ("fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "nl-ams-3",
                          "pl-waw-1", "pl-waw-2", "pl-waw-3", "it-mil-1")
# The one zone table, for what no API can tell (offline: argument choices, the settings'
# buckets, the wizard's zone list; the SDK's own locality list lacks pl-waw-3 and it-mil-1).
# Where the API can tell, the inventory asks it: engine.scaleway.inventory.block_zones.
REGIONS: tuple[str, ...] = tuple(dict.fromkeys(z.rsplit("-", 1)[0] for z in ZONES))
GB = 1000 ** 3                         # Scaleway sizes volumes in decimal gigabytes
EXPORT_MIN, EXPORT_MAX = 1 * GB, 1000 * GB   # snapshots export to Object Storage only in this range


def export_refusal(size: int) -> str:
    """Why a volume of ``size`` bytes cannot be exported (so backed up), or "" if it can."""
    if size > EXPORT_MAX:
        return (f"too large to export (1 TB max): the volume is {size / GB:g} GB, and Scaleway "
                f"exports snapshots of 1 GB to 1 TB only")
    if size < EXPORT_MIN:
        return (f"too small to export (1 GB min): the volume is {size / GB:g} GB, and Scaleway "
                f"exports snapshots of 1 GB to 1 TB only")
    return ""
DEFAULT_REGION, DEFAULT_ZONE = "fr-par", "fr-par-1"
HOW_TO_SET = ("set SCW_ACCESS_KEY and SCW_SECRET_KEY, or run `scw init` to write "
              "~/.config/scw/config.yaml (pick a profile with --profile or SCW_PROFILE)")


def region_of(zone: str) -> str:
    """fr-par-1 → fr-par."""
    return zone.rsplit("-", 1)[0]


def scw_config_path() -> Path:
    """Where the Scaleway CLI keeps its config: $SCW_CONFIG_PATH, else ~/.config/scw/config.yaml."""
    # scaleway_core alone: the `scaleway` package imports every API (~0.1 s more), and a store
    # on Object Storage only wants the profile's keys and region
    from scaleway_core.client import Client

    return Path(Client.get_default_config_file_path())


def scw_client(profile: str | None = None) -> Client:
    """The SDK client for ``profile`` (else $SCW_PROFILE, else "default"): config file, then
    ``SCW_*`` variables over it, as the SDK itself does. UsageError if credentials are missing."""
    from scaleway_core.client import Client  # see scw_config_path

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


def boto_s3_client(endpoint: str | None, region: str, access_key: str | None = None,
                   secret_key: str | None = None, *, concurrency: int = 16,
                   attempts: int = 8) -> Any:
    """A boto3 S3 client with the settings Scaleway's Object Storage accepts (checksums only
    when required, path style for a local endpoint, which has no per-bucket DNS names).
    No keys: boto3's own chain (AWS_* variables, ~/.aws). ``attempts``: botocore's own tries
    per request (1: the caller retries, as the store does)."""
    import boto3  # ~0.15 s with the client: only commands that reach Object Storage pay it
    from botocore.config import Config

    style = "virtual" if endpoint is None or endpoint.endswith(".scw.cloud") else "path"
    config = Config(region_name=region, signature_version="s3v4",
                    retries={"max_attempts": attempts, "mode": "standard"},
                    max_pool_connections=max(concurrency, 10),
                    connect_timeout=10, read_timeout=60, s3={"addressing_style": style},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config,
                                          aws_access_key_id=access_key,
                                          aws_secret_access_key=secret_key)
