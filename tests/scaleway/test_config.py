"""Credentials as the Scaleway SDK reads them; Strongroom's own settings file."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import UsageError
from engine.scaleway.config import region_of, s3_endpoint, scw_client
from engine.settings import Settings, load_settings, save_settings, settings_path

ACCESS, SECRET = "SCWABCDEFGHIJKLMNOPQ", "11111111-2222-3333-4444-555555555555"
OTHER = "SCWOTHERPROFILEKEY01"


def _write_config(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""access_key: {ACCESS}
secret_key: {SECRET}
default_zone: nl-ams-1
default_region: nl-ams
profiles:
  prod:
    access_key: {OTHER}
    secret_key: {SECRET}
    default_zone: pl-waw-2
""")


def test_missing_credentials_say_how_to_set_them() -> None:
    with pytest.raises(UsageError, match="SCW_ACCESS_KEY.*scw init"):
        scw_client()


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCW_ACCESS_KEY", ACCESS)
    monkeypatch.setenv("SCW_SECRET_KEY", SECRET)
    client = scw_client()
    assert (client.access_key, client.default_zone, client.default_region) == (
        ACCESS, "fr-par-1", "fr-par")


def test_config_file_profiles_and_env_over_them(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "scw" / "config.yaml"
    _write_config(config)
    monkeypatch.setenv("SCW_CONFIG_PATH", str(config))
    client = scw_client()
    assert (client.access_key, client.default_zone) == (ACCESS, "nl-ams-1")
    prod = scw_client("prod")
    assert (prod.access_key, prod.default_zone) == (OTHER, "pl-waw-2")
    monkeypatch.setenv("SCW_PROFILE", "prod")
    assert scw_client().access_key == OTHER
    monkeypatch.setenv("SCW_DEFAULT_ZONE", "fr-par-2")  # variables win over the file
    assert scw_client().default_zone == "fr-par-2"
    with pytest.raises(UsageError, match="no Scaleway profile 'nope'"):
        scw_client("nope")


def test_bad_secret_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCW_ACCESS_KEY", ACCESS)
    monkeypatch.setenv("SCW_SECRET_KEY", "not-a-uuid-secret")
    with pytest.raises(UsageError) as err:
        scw_client()
    assert "not-a-uuid-secret" not in str(err.value)


def test_settings_round_trip_and_hold_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings() == Settings()
    s = Settings(store_url="s3://b/p", buckets={"fr-par": 'my "bucket"'}, environment="prod",
                 data_class="secret", keep_temporaries=True, theme="nord")
    path = save_settings(s)
    assert path == settings_path() and path.is_file()
    assert load_settings() == s
    assert s.bucket_for("fr-par") == 'my "bucket"'
    assert s.bucket_for("nl-ams") == "strongroom-staging-nl-ams"
    text = path.read_text()
    assert "secret_key" not in text and "access_key" not in text
    assert not list(path.parent.glob(".settings-*"))  # no temp file left


def test_broken_settings_file_is_a_usage_error() -> None:
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("store_url = [unclosed")
    with pytest.raises(UsageError, match="fix or delete"):
        load_settings()


def test_regions_and_s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    assert region_of("pl-waw-3") == "pl-waw"
    assert s3_endpoint("nl-ams") == "https://s3.nl-ams.scw.cloud"
    monkeypatch.setenv("STRONGROOM_S3_ENDPOINT", "http://127.0.0.1:9")
    assert s3_endpoint("nl-ams") == "http://127.0.0.1:9"
