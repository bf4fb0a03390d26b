"""The volume flows with the store itself on Object Storage (the sandbox's S3), while that S3
refuses (429, 503) and resets connections: backup and restore still finish, same bytes."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from engine.jobs import DONE
from engine.scaleway.api import Apis, RetryPolicy
from engine.scaleway.config import scw_client
from engine.scaleway.flows import backup_volume, restore_snapshot
from engine.settings import Settings
from tests.scaleway.helpers import FAST, leftovers, run_flow, same_content

PASS = "correct horse battery staple"


@pytest.fixture
def apis(scw_env: Any) -> Apis:
    return Apis(scw_client(), retry=RetryPolicy(attempts=8, base=0.01, cap=0.1))


@pytest.fixture
def s3_store(scw_env: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from engine.store import Store

    monkeypatch.setenv("STRONGROOM_KDF_MEMORY_KIB", "8192")
    url = f"s3://flows-{uuid.uuid4().hex[:8]}/store"
    store = Store.init(url, PASS, create_bucket=True)
    yield store
    store.close()


async def test_volume_backup_and_restore_into_an_s3_store_through_s3_faults(
        sandbox_faults: Any, apis: Apis, s3_store: Any) -> None:
    from engine.scaleway.inventory import list_inventory

    volumes = await list_inventory(apis, zones=("fr-par-1", "fr-par-2", "nl-ams-1"))
    vol = next(v for v in volumes if v.name == "dev-scratch")
    proxy = sandbox_faults.world.storage.server.proxy
    before = proxy.stats.refused + proxy.stats.reset
    sandbox_faults.faults(s3_rate_429=0.1, s3_rate_503=0.1, s3_rate_drop=0.05)
    job = await run_flow(lambda r: backup_volume(r, store=s3_store, client=apis,
                                                 volume_id=vol.id, zone=vol.zone,
                                                 timeouts=FAST, settings=Settings(),
                                                 part_size=1 << 20))
    assert job.state == DONE, job.error
    job = await run_flow(lambda r: restore_snapshot(r, store=s3_store, client=apis,
                                                    ref=job.result.snapshot, zone=vol.zone,
                                                    rename_on_clash=True, timeouts=FAST,
                                                    settings=Settings()))
    sandbox_faults.faults()
    assert job.state == DONE, job.error
    assert proxy.stats.refused + proxy.stats.reset > before
    new = job.result.volume_id
    assert same_content(sandbox_faults.volume_path(vol.id), sandbox_faults.volume_path(new))
    bucket = sandbox_faults.buckets[vol.zone.rsplit("-", 1)[0]]
    assert leftovers(apis, vol.zone, bucket) == {"objects": [], "uploads": [], "snapshots": []}
    apis.block.delete_volume(volume_id=new, zone=vol.zone)
