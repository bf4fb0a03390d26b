"""Inventory and preflight against the running sandbox, through the real SDK and boto3."""
from __future__ import annotations

from typing import Any

import pytest

from tests.scaleway.helpers import run_flow
from engine.scaleway.api import Apis
from engine.scaleway.config import scw_client
from engine.scaleway.inventory import list_inventory, list_projects, list_volumes
from engine.scaleway.preflight import MISSING, NEEDED, OK, preflight

ZONES = ("fr-par-1", "fr-par-2", "nl-ams-1")


async def test_inventory_walks_projects_and_zones(scw_env: Any) -> None:
    client = scw_client()
    projects = await list_projects(client)
    assert {"default", "web-production", "data-platform"} <= {p.name for p in projects}
    volumes = await list_inventory(client, zones=ZONES)
    by_name = {v.name: v for v in volumes}
    web = by_name["web-01-data"]
    assert web.server == "web-01" and web.server_id and web.backupable
    assert (web.type, web.perf_iops, web.size) == ("sbs_5k", 5000, 20_000_000_000)
    assert "environment=production" in web.tags
    assert by_name["postgres-main"].type == "sbs_15k"
    pvc = [v for v in volumes if v.name.startswith("pvc-")]
    assert pvc and all(v.csi for v in pvc)
    legacy = [v for v in volumes if v.type in ("b_ssd", "l_ssd")]
    assert legacy and all(not v.backupable and "not backupable" in v.reason for v in legacy)
    assert all(v.last_backup is None and v.backup_count == 0 for v in volumes)


async def test_list_volumes_of_one_project_and_zone_records_calls(scw_env: Any) -> None:
    client = scw_client()
    projects = {p.name: p.id for p in await list_projects(client)}
    job = await run_flow(lambda r: list_volumes(client, projects["web-production"],
                                                "fr-par-1", reporter=r))
    assert {v.name for v in job.result} >= {"web-01-data", "postgres-main"}
    assert all(v.zone == "fr-par-1" for v in job.result)
    assert any(c["path"] == "/block/v1/zones/fr-par-1/volumes" and c["status"] == 200
               for c in job.log)


async def test_inventory_counts_backups_from_the_store(scw_env: Any) -> None:
    class Snap:  # the store's SnapshotInfo fields that the inventory reads
        def __init__(self, volume_id: str, time: str) -> None:
            self.source, self.time = {"volume_id": volume_id}, time

    client = scw_client()
    projects = {p.name: p.id for p in await list_projects(client)}
    first = await list_volumes(client, projects["web-production"], "fr-par-1")
    vid = first[0].id
    snaps = [Snap(vid, "2026-01-01T00:00:00Z"), Snap(vid, "2026-02-01T00:00:00Z"),
             Snap("other", "2026-03-01T00:00:00Z")]
    again = await list_volumes(client, projects["web-production"], "fr-par-1", snaps)
    counted = next(v for v in again if v.id == vid)
    assert (counted.backup_count, counted.last_backup) == (2, "2026-02-01T00:00:00Z")


async def test_preflight_passes_with_the_full_key(sandbox: Any, scw_env: Any) -> None:
    report = await preflight(scw_client(), zone="fr-par-1", bucket=sandbox.buckets["fr-par"])
    assert report.ok, [c for c in report.checks if not c.ok]
    names = {c.name for c in report.checks}
    assert {f"permission {n}" for n in NEEDED} <= names
    assert {"credentials", "bucket", "bucket region", "bucket write"} <= names
    s3 = Apis(scw_client()).s3("fr-par")
    assert "Contents" not in s3.list_objects_v2(Bucket=sandbox.buckets["fr-par"],
                                                Prefix="strongroom-tmp/preflight")


@pytest.mark.parametrize("role, missing", [
    # The sandbox's S3 enforces each key's rights as the real one does: the read-only key's
    # write probe is refused, so the probe proves what IAM says.
    ("readonly", {"permission BlockStorageFullAccess", "permission ObjectStorageBucketsWrite",
                  "permission ObjectStorageObjectsWrite", "bucket write"}),
    ("nobucket", {"permission ObjectStorageBucketsRead", "permission ObjectStorageBucketsWrite",
                  "permission ObjectStorageObjectsRead", "permission ObjectStorageObjectsWrite",
                  "bucket"}),
    ("noblock", {"permission BlockStorageFullAccess"}),
])
async def test_preflight_names_exactly_what_is_missing(sandbox: Any, scw_env: Any,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       role: str, missing: set[str]) -> None:
    access, secret = sandbox.keys[role]
    monkeypatch.setenv("SCW_ACCESS_KEY", access)
    monkeypatch.setenv("SCW_SECRET_KEY", secret)
    report = await preflight(scw_client(), zone="fr-par-1", bucket=sandbox.buckets["fr-par"])
    assert not report.ok
    assert set(report.missing) == missing
    for check in report.checks:
        assert check.status in (OK, MISSING)
        if check.status == MISSING:
            assert check.fix


async def test_preflight_sees_a_bucket_in_the_wrong_region(sandbox: Any, scw_env: Any) -> None:
    report = await preflight(scw_client(), zone="fr-par-1", bucket=sandbox.buckets["nl-ams"])
    assert report.missing == ["bucket region"]
    wrong = next(c for c in report.checks if c.name == "bucket region")
    assert "nl-ams" in wrong.detail and "fr-par" in wrong.fix


async def test_preflight_with_a_refused_key(sandbox: Any, scw_env: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCW_ACCESS_KEY", "SCWZZZZZZZZZZZZZZZZZ")
    monkeypatch.setenv("SCW_SECRET_KEY", "00000000-0000-0000-0000-000000000000")
    report = await preflight(scw_client(), zone="fr-par-1", bucket=sandbox.buckets["fr-par"])
    assert report.checks[0].name == "credentials" and report.checks[0].status == MISSING
    assert "SCW_ACCESS_KEY" in report.checks[0].fix


async def test_preflight_finds_the_organization_from_the_key(sandbox: Any, scw_env: Any,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.delenv("SCW_DEFAULT_ORGANIZATION_ID")
    report = await preflight(scw_client(), zone="fr-par-1", bucket=sandbox.buckets["fr-par"])
    assert report.ok, [c for c in report.checks if not c.ok]
    monkeypatch.delenv("SCW_DEFAULT_PROJECT_ID")
    report = await preflight(scw_client(), zone="fr-par-1", bucket=sandbox.buckets["fr-par"])
    unverified = [c for c in report.checks if c.status == "could not verify"]
    assert [c.name for c in unverified] == ["permissions"]
    assert "--project" in unverified[0].fix
