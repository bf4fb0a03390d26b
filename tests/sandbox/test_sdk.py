"""The real scaleway SDK drives every sandbox call, and every answer unmarshals."""
from __future__ import annotations

import pytest
from scaleway.account.v3 import AccountV3ProjectAPI
from scaleway.block import v1, v1alpha1
from scaleway.iam.v1alpha1 import IamV1Alpha1API
from scaleway.instance.v1 import InstanceV1API
from scaleway_core.api import ScalewayException
from scaleway_core.utils import WaitForOptions

from tests.sandbox.helpers import GB, settle

# The SDK's own waiter polls at most once a second: used once, to show it works (it returns
# as soon as the volume is ready; the deadline allows for a loaded machine).
SDK_WAIT = WaitForOptions(timeout=60, min_delay=1, max_delay=1)


def _projects(client) -> dict[str, str]:
    return {p.name: p.id for p in AccountV3ProjectAPI(client).list_projects_all()}


def test_projects_list_and_get(scw_client, sandbox):
    api = AccountV3ProjectAPI(scw_client())
    projects = api.list_projects_all(organization_id=sandbox.organization_id)
    assert [p.name for p in projects] == ["default", "web-production", "data-platform"]
    assert api.get_project(project_id=projects[1].id).name == "web-production"
    page = api.list_projects(page=2, page_size=2)
    assert page.total_count == 3 and len(page.projects) == 1
    with pytest.raises(ScalewayException) as err:
        api.get_project(project_id="00000000-0000-4000-8000-000000000000")
    assert err.value.status_code == 404
    assert err.value.response.json()["type"] == "not_found"


def test_seeded_inventory(scw_client):
    client = scw_client()
    api = v1.BlockV1API(client)
    volumes = [vol for pid in _projects(client).values()
               for zone in ("fr-par-1", "fr-par-2", "nl-ams-1")
               for vol in api.list_volumes_all(zone=zone, project_id=pid,
                                               include_deleted=False)]
    assert {v.zone for v in volumes} >= {"fr-par-1", "fr-par-2", "nl-ams-1"}
    assert {v.type_ for v in volumes} >= {"sbs_5k", "sbs_15k"}
    assert all(v.size >= 5 * GB for v in volumes)
    assert any(v.name.startswith("pvc-") for v in volumes)
    attached = [v for v in volumes if v.references and v.type_ != "b_ssd"]
    assert len(attached) == 1 and attached[0].status == "in_use"
    assert attached[0].references[0].product_resource_type == "instance_server"
    # the server's legacy root volume, seen through the Block API as migrated ones are
    legacy = [v for v in volumes if v.type_ == "b_ssd"]
    assert [v.specs.class_ for v in legacy] == ["bssd"] and legacy[0].status == "in_use"


def test_list_filters_and_pagination(scw_client):
    client = scw_client()
    api = v1.BlockV1API(client)
    web = _projects(client)["web-production"]
    everything = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False)
    assert everything.total_count >= 2
    first = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False,
                             page=1, page_size=1)
    second = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False,
                              page=2, page_size=1)
    assert first.total_count == everything.total_count
    assert len(first.volumes) == 1 and first.volumes[0].id != second.volumes[0].id
    by_name = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False,
                               name="postgres-main")
    assert [v.name for v in by_name.volumes] == ["postgres-main"]
    by_type = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False,
                               volume_type="sbs_15k")
    assert {v.type_ for v in by_type.volumes} == {"sbs_15k"}
    by_tag = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False,
                              tags=["data_class=confidential"])
    assert [v.name for v in by_tag.volumes] == ["postgres-main"]
    by_ids = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False,
                              volume_ids=[first.volumes[0].id])
    assert [v.id for v in by_ids.volumes] == [first.volumes[0].id]
    server_id = next(v for v in everything.volumes if v.references).references[0]
    mounted = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False,
                               product_resource_id=server_id.product_resource_id)
    assert sorted(v.name for v in mounted.volumes) == ["web-01-data", "web-01-legacy-root"]
    newest_first = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False,
                                    order_by=v1.ListVolumesRequestOrderBy.CREATED_AT_DESC)
    assert [v.id for v in newest_first.volumes] == [v.id for v in everything.volumes][::-1]


def test_volume_types(scw_client):
    for api in (v1.BlockV1API(scw_client()), v1alpha1.BlockV1Alpha1API(scw_client())):
        types = api.list_volume_types_all(zone="fr-par-1")
        assert {t.type_: t.specs.perf_iops for t in types} == {"sbs_5k": 5000,
                                                               "sbs_15k": 15000}
        assert types[0].pricing.currency_code == "EUR"


def test_volume_lifecycle(scw_client):
    api = v1.BlockV1API(scw_client())
    created = api.create_volume(name="sdk-life", perf_iops=5000, tags=["a"],
                                from_empty=v1.CreateVolumeRequestFromEmpty(size=10 * GB))
    assert created.status == "creating" and created.type_ == "sbs_5k"
    volume = api.wait_for_volume(volume_id=created.id, options=SDK_WAIT)
    assert volume.status == "available" and volume.size == 10 * GB
    renamed = api.update_volume(volume_id=volume.id, name="sdk-life-2", tags=["a", "b"])
    assert renamed.name == "sdk-life-2" and renamed.tags == ["a", "b"]
    assert renamed.status == "available"
    grown = api.update_volume(volume_id=volume.id, size=20 * GB)
    assert grown.status == "updating" and grown.size == 20 * GB
    assert settle(api.get_volume, volume_id=volume.id).status == "available"
    faster = api.update_volume(volume_id=volume.id, perf_iops=15000)
    assert faster.status == "updating" and faster.type_ == "sbs_15k"
    assert settle(api.get_volume, volume_id=volume.id).specs.perf_iops == 15000
    with pytest.raises(ScalewayException) as err:
        api.update_volume(volume_id=volume.id, size=5 * GB)
    assert err.value.status_code == 400
    assert err.value.response.json()["type"] == "invalid_arguments"
    api.delete_volume(volume_id=volume.id)
    with pytest.raises(ScalewayException) as err:
        api.get_volume(volume_id=volume.id)
    assert err.value.response.json() == {"message": "resource is not found",
                                         "resource": "volume", "resource_id": volume.id,
                                         "type": "not_found"}


def test_busy_and_attached_volumes_are_refused(scw_client):
    client = scw_client()
    api = v1.BlockV1API(client)
    created = api.create_volume(name="sdk-busy", perf_iops=5000,
                                from_empty=v1.CreateVolumeRequestFromEmpty(size=5 * GB))
    with pytest.raises(ScalewayException) as err:
        api.create_snapshot(volume_id=created.id, public=False, name="too-soon")
    assert err.value.status_code == 409
    assert err.value.response.json()["type"] == "transient_state"
    settle(api.get_volume, volume_id=created.id)
    api.delete_volume(volume_id=created.id)
    web = _projects(client)["web-production"]
    attached = api.list_volumes(zone="fr-par-1", project_id=web, include_deleted=False,
                                name="web-01-data").volumes[0]
    with pytest.raises(ScalewayException) as err:
        api.delete_volume(volume_id=attached.id)
    assert err.value.status_code == 412
    assert err.value.response.json()["type"] == "precondition_failed"


def test_snapshot_lifecycle_and_volume_from_snapshot(scw_client, sandbox):
    api = v1.BlockV1API(scw_client())
    volume = settle(api.get_volume, volume_id=api.create_volume(
        name="sdk-snap-src", perf_iops=5000,
        from_empty=v1.CreateVolumeRequestFromEmpty(size=10 * GB)).id)
    with open(sandbox.volume_path(volume.id), "r+b") as f:
        f.seek(123 * 4096)
        f.write(b"point in time")
    snap = api.create_snapshot(volume_id=volume.id, public=False, name="sdk-snap", tags=["t"])
    assert snap.status == "creating" and snap.parent_volume.id == volume.id
    snap = settle(api.get_snapshot, snapshot_id=snap.id)
    assert snap.status == "available" and snap.size == 10 * GB
    listed = api.list_snapshots_all(volume_id=volume.id, include_deleted=False)
    assert [s.id for s in listed] == [snap.id]
    assert api.update_snapshot(snapshot_id=snap.id, name="sdk-snap-2").name == "sdk-snap-2"
    with pytest.raises(ScalewayException) as err:
        api.create_volume(name="too-small", perf_iops=15000,
                          from_snapshot=v1.CreateVolumeRequestFromSnapshot(
                              snapshot_id=snap.id, size=5 * GB))
    assert err.value.status_code == 412      # as recorded: a precondition, not a bad argument
    restored = api.create_volume(name="sdk-from-snap", perf_iops=15000,
                                 from_snapshot=v1.CreateVolumeRequestFromSnapshot(
                                     snapshot_id=snap.id, size=30 * GB))
    assert restored.parent_snapshot_id == snap.id and restored.type_ == "sbs_15k"
    restored = settle(api.get_volume, volume_id=restored.id)
    assert restored.size == 30 * GB
    path = sandbox.volume_path(restored.id)
    assert path.stat().st_size == 30 * GB
    with open(path, "rb") as f:
        f.seek(123 * 4096)
        assert f.read(13) == b"point in time"
    for volume_id in (restored.id, volume.id):
        api.delete_volume(volume_id=volume_id)
    api.delete_snapshot(snapshot_id=snap.id)
    assert not sandbox.snapshot_path(snap.id).exists()


def test_v1alpha1_volumes_and_snapshots(scw_client):
    api = v1alpha1.BlockV1Alpha1API(scw_client(zone="nl-ams-1"))
    created = api.create_volume(name="alpha", perf_iops=15000,
                                from_empty=v1alpha1.CreateVolumeRequestFromEmpty(size=5 * GB))
    volume = settle(api.get_volume, volume_id=created.id)
    assert volume.zone == "nl-ams-1" and volume.type_ == "sbs_15k"
    assert any(v.id == volume.id for v in api.list_volumes_all())
    snap = settle(api.get_snapshot, snapshot_id=api.create_snapshot(
        volume_id=volume.id, name="alpha-snap").id)
    assert api.get_snapshot(snapshot_id=snap.id).status == "available"
    assert api.update_volume(volume_id=volume.id, name="alpha-2").name == "alpha-2"
    api.delete_snapshot(snapshot_id=snap.id)
    api.delete_volume(volume_id=volume.id)


def test_instance_servers_and_volumes(scw_client):
    client = scw_client()
    web = _projects(client)["web-production"]
    api = InstanceV1API(client)
    servers = api.list_servers_all(zone="fr-par-1", project=web)
    assert [s.name for s in servers] == ["web-01"]
    server = api.get_server(server_id=servers[0].id).server
    assert server.state == "running"
    kinds = {v.volume_type for v in server.volumes.values()}
    assert kinds == {"b_ssd", "sbs_volume"}
    sbs_id = next(v.id for v in server.volumes.values() if v.volume_type == "sbs_volume")
    volume = v1.BlockV1API(client).get_volume(volume_id=sbs_id)
    assert volume.references[0].product_resource_id == server.id
    legacy = api.list_volumes_all(zone="fr-par-1", project=web)
    assert [v.volume_type for v in legacy] == ["b_ssd"]
    assert api.get_volume(volume_id=legacy[0].id).volume.server.id == server.id
    with pytest.raises(ScalewayException) as err:    # an SBS volume is no Instance volume
        api.get_volume(volume_id=sbs_id)
    assert err.value.response.json()["resource"] == "instance_volume"


def test_iam_permission_check(scw_client, sandbox):
    client = scw_client("readonly")
    api = IamV1Alpha1API(client)
    key = api.get_api_key(access_key=sandbox.keys["readonly"][0])
    assert key.secret_key is None and key.application_id
    app = api.get_application(application_id=key.application_id)
    assert app.name == "strongroom-readonly"
    policies = api.list_policies_all(application_ids=[key.application_id])
    sets = {name for p in policies for r in api.list_rules_all(policy_id=p.id)
            for name in r.permission_set_names}
    assert "BlockStorageReadOnly" in sets and "BlockStorageFullAccess" not in sets
    assert api.get_policy(policy_id=policies[0].id).application_id == key.application_id
    groups = api.list_groups_all()
    assert api.get_group(group_id=groups[0].id).name == "backup-operators"
    assert {k.access_key for k in api.list_api_keys_all()} >= {sandbox.keys["full"][0]}
    assert len(api.list_applications_all()) == 4
    names = {s.name for s in api.list_permission_sets_all()}
    assert {"BlockStorageFullAccess", "ObjectStorageFullAccess"} <= names


def test_sdk_configured_from_scw_env_only(scw_env):
    """With only the printed variables set, the SDK finds the sandbox on its own."""
    import scaleway

    client = scaleway.Client.from_env()
    assert client.api_url == scw_env["SCW_API_URL"]
    projects = AccountV3ProjectAPI(client).list_projects()
    assert projects.total_count == 3
    assert v1.BlockV1API(client).list_volumes(include_deleted=False).total_count >= 0
