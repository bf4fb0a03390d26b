"""Block Storage (SBS) under /block/v1/ and /block/v1alpha1/: volumes, snapshots, their export
to and import from Object Storage, and volume types.

Each change answers at once with the object in its transient status (``creating``,
``updating``, ``exporting``); the final status comes after the configured delay, as on the
real API. Volume bytes live in sparse files; a snapshot is a point-in-time copy of them.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiohttp import web

from engine.sandbox import iam, replies
from engine.sandbox.replies import json_body, multi, ok, paginate
from engine.sandbox.seed import GB, IOPS_TYPES, REGION_OF_ZONE
from engine.sandbox.state import TRANSIENT, make_sparse, now_iso, public, sparse_copy
from engine.sandbox.world import WORLD, World

MIN_SIZE = 1 * GB
MAX_SIZE = 10_000 * GB
MAX_EXPORT = 1_000 * GB
# Fields each API version sends (v1alpha1 predates KMS keys and public snapshots).
_ALPHA_DROP = {"volumes": {"kms_key_id"}, "snapshots": {"kms_key_id", "public"}}


def _world(request: web.Request) -> World:
    world: World = request.app[WORLD]
    world.state.settle()
    return world


def _zone(request: web.Request, write: bool) -> str:
    iam.require(request, "block", "write" if write else "read")
    zone = request.match_info["zone"]
    if zone not in REGION_OF_ZONE:
        raise replies.invalid_argument("zone", f"unknown zone {zone!r}", reason="format")
    return zone


def _render(request: web.Request, coll: str, obj: dict[str, Any]) -> dict[str, Any]:
    out = public(obj)
    if coll == "snapshots" and out.get("parent_volume"):
        volume = request.app[WORLD].state.coll("volumes").get(out["parent_volume"]["id"])
        if volume is not None:
            out["parent_volume"] = {**out["parent_volume"], "status": volume["status"]}
    if request.match_info["version"] == "v1alpha1":
        for name in _ALPHA_DROP[coll]:
            out.pop(name, None)
    return out


def _find(world: World, coll: str, zone: str, ident: str, resource: str) -> dict[str, Any]:
    obj = world.state.coll(coll).get(ident)
    if obj is None or obj["zone"] != zone:
        raise replies.not_found(resource, ident)
    return obj


def _project(world: World, body: dict[str, Any]) -> str:
    project_id = body.get("project_id") or ""
    if not project_id:
        raise replies.invalid_argument("project_id", "project_id is required", reason="required")
    if project_id not in world.state.coll("projects"):
        raise replies.permissions_denied("project", "write")
    return project_id


def _tags(body: dict[str, Any]) -> list[str]:
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise replies.invalid_argument("tags", "tags must be a list of strings", reason="format")
    return tags


def _size(value: Any, name: str = "size") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise replies.invalid_argument(name, "size must be an integer number of bytes",
                                       reason="format")
    if not MIN_SIZE <= value <= MAX_SIZE:
        raise replies.invalid_argument(name, "size must be between 1 GB and 10 TB")
    return value


def _iops(value: Any) -> int:
    if value is None:
        return 5000
    if value not in IOPS_TYPES:
        raise replies.invalid_argument("perf_iops", "perf_iops must be 5000 or 15000")
    return int(value)


def _busy(resource: str, obj: dict[str, Any]) -> None:
    if obj["status"] in TRANSIENT:
        raise replies.transient(resource, obj["id"], obj["status"])


def _filtered(request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The filters both listings share."""
    for param in ("project_id", "organization_id"):
        value = request.query.get(param)
        if value and param == "project_id":
            items = [i for i in items if i["project_id"] == value]
        elif value:
            projects = request.app[WORLD].state.coll("projects")
            items = [i for i in items
                     if projects.get(i["project_id"], {}).get("organization_id") == value]
    name = request.query.get("name")
    if name:
        items = [i for i in items if name in i["name"]]
    tags = multi(request, "tags")
    if tags:
        items = [i for i in items if set(tags) & set(i.get("tags", []))]
    return replies.order(items, request.query.get("order_by"))


# -- volumes ----------------------------------------------------------------------------------
async def list_volumes(request: web.Request) -> web.Response:
    zone = _zone(request, write=False)
    world = _world(request)
    volumes = [v for v in world.state.coll("volumes").values() if v["zone"] == zone]
    wanted = multi(request, "volume_ids")
    if wanted:
        volumes = [v for v in volumes if v["id"] in wanted]
    vtype = request.query.get("volume_type")
    if vtype:
        volumes = [v for v in volumes if v["type"] == vtype]
    resource = request.query.get("product_resource_id")
    if resource:
        volumes = [v for v in volumes
                   if any(r["product_resource_id"] == resource for r in v["references"])]
    volumes = _filtered(request, volumes)
    return ok({"total_count": len(volumes),
               "volumes": [_render(request, "volumes", v) for v in paginate(volumes, request)]})


async def get_volume(request: web.Request) -> web.Response:
    zone = _zone(request, write=False)
    volume = _find(_world(request), "volumes", zone, request.match_info["volume_id"], "volume")
    return ok(_render(request, "volumes", volume))


async def create_volume(request: web.Request) -> web.Response:
    zone = _zone(request, write=True)
    world = _world(request)
    body = await json_body(request)
    project_id = _project(world, body)
    iops = _iops(body.get("perf_iops"))
    name = body.get("name") or f"vol-{uuid.uuid4().hex[:8]}"
    from_empty, from_snapshot = body.get("from_empty"), body.get("from_snapshot")
    if bool(from_empty) == bool(from_snapshot):
        raise replies.invalid_argument("from_empty", "give exactly one of from_empty and "
                                       "from_snapshot", reason="required")
    volume_id = str(uuid.uuid4())
    path = world.state.volume_path(volume_id)
    parent = None
    if from_empty:
        size = _size(from_empty.get("size"))
        await asyncio.to_thread(make_sparse, path, size)
    else:
        snapshot = _find(world, "snapshots", zone, str(from_snapshot.get("snapshot_id")),
                         "snapshot")
        _busy("snapshot", snapshot)
        size = from_snapshot.get("size")
        size = snapshot["size"] if size is None else _size(size)
        if size < snapshot["size"]:
            raise replies.invalid_argument(
                "size", f"size must be at least the snapshot's size ({snapshot['size']} bytes)")
        parent = snapshot["id"]
        await asyncio.to_thread(sparse_copy, world.state.snapshot_path(parent), path, size)
    stamp = now_iso()
    volume = {"id": volume_id, "name": name, "type": IOPS_TYPES[iops], "size": size,
              "project_id": project_id, "created_at": stamp, "updated_at": stamp,
              "references": [], "parent_snapshot_id": parent, "status": "creating",
              "tags": _tags(body), "specs": {"perf_iops": iops, "class": "sbs"},
              "last_detached_at": None, "kms_key_id": None, "zone": zone}
    world.state.coll("volumes")[volume_id] = volume
    world.state.schedule(volume, "available", world.delays.create)
    world.state.save()
    return ok(_render(request, "volumes", volume))


async def update_volume(request: web.Request) -> web.Response:
    zone = _zone(request, write=True)
    world = _world(request)
    volume = _find(world, "volumes", zone, request.match_info["volume_id"], "volume")
    body = await json_body(request)
    _busy("volume", volume)
    resize = body.get("size") is not None and body["size"] != volume["size"]
    iops = body.get("perf_iops")
    retune = iops is not None and iops != volume["specs"]["perf_iops"]
    if resize:
        size = _size(body["size"])
        if size < volume["size"]:
            raise replies.invalid_argument("size", "a volume can only grow")
        await asyncio.to_thread(_grow, world.state.volume_path(volume["id"]), size)
        volume["size"] = size
    if retune:
        iops = _iops(iops)
        volume["specs"] = {"perf_iops": iops, "class": "sbs"}
        volume["type"] = IOPS_TYPES[iops]
    if body.get("name"):
        volume["name"] = body["name"]
    if body.get("tags") is not None:
        volume["tags"] = _tags(body)
    volume["updated_at"] = now_iso()
    if resize or retune:
        volume["status"] = "updating"
        world.state.schedule(volume, "available", world.delays.update)
    world.state.save()
    return ok(_render(request, "volumes", volume))


def _grow(path: Any, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


async def delete_volume(request: web.Request) -> web.Response:
    zone = _zone(request, write=True)
    world = _world(request)
    volume = _find(world, "volumes", zone, request.match_info["volume_id"], "volume")
    if any(r["status"] == "attached" for r in volume["references"]):
        raise replies.precondition("resource_still_in_use",
                                   "detach the volume from its server first")
    _busy("volume", volume)
    del world.state.coll("volumes")[volume["id"]]
    world.state.save()
    world.state.volume_path(volume["id"]).unlink(missing_ok=True)
    return replies.no_content()


# -- snapshots --------------------------------------------------------------------------------
async def list_snapshots(request: web.Request) -> web.Response:
    zone = _zone(request, write=False)
    world = _world(request)
    snapshots = [s for s in world.state.coll("snapshots").values() if s["zone"] == zone]
    volume_id = request.query.get("volume_id")
    if volume_id:
        snapshots = [s for s in snapshots
                     if (s.get("parent_volume") or {}).get("id") == volume_id]
    snapshots = _filtered(request, snapshots)
    return ok({"snapshots": [_render(request, "snapshots", s)
                             for s in paginate(snapshots, request)],
               "total_count": len(snapshots)})


async def get_snapshot(request: web.Request) -> web.Response:
    zone = _zone(request, write=False)
    snapshot = _find(_world(request), "snapshots", zone, request.match_info["snapshot_id"],
                     "snapshot")
    return ok(_render(request, "snapshots", snapshot))


async def create_snapshot(request: web.Request) -> web.Response:
    zone = _zone(request, write=True)
    world = _world(request)
    body = await json_body(request)
    volume = _find(world, "volumes", zone, str(body.get("volume_id")), "volume")
    project_id = _project(world, {"project_id": body.get("project_id") or volume["project_id"]})
    _busy("volume", volume)
    snapshot_id = str(uuid.uuid4())
    await asyncio.to_thread(sparse_copy, world.state.volume_path(volume["id"]),
                            world.state.snapshot_path(snapshot_id))
    stamp = now_iso()
    snapshot = _snapshot(snapshot_id, body.get("name") or f"snp-{snapshot_id[:8]}",
                         volume["size"], project_id, _tags(body), zone, stamp,
                         {"id": volume["id"], "name": volume["name"], "type": volume["type"],
                          "status": volume["status"]})
    snapshot["public"] = bool(body.get("public", False))
    world.state.coll("snapshots")[snapshot_id] = snapshot
    world.state.schedule(snapshot, "available", world.delays.create)
    world.state.save()
    return ok(_render(request, "snapshots", snapshot))


def _snapshot(snapshot_id: str, name: str, size: int, project_id: str, tags: list[str],
              zone: str, stamp: str, parent: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": snapshot_id, "name": name, "size": size, "project_id": project_id,
            "created_at": stamp, "updated_at": stamp, "references": [], "status": "creating",
            "tags": tags, "zone": zone, "class": "sbs", "public": False, "kms_key_id": None,
            "parent_volume": parent}


async def update_snapshot(request: web.Request) -> web.Response:
    zone = _zone(request, write=True)
    world = _world(request)
    snapshot = _find(world, "snapshots", zone, request.match_info["snapshot_id"], "snapshot")
    body = await json_body(request)
    if body.get("name"):
        snapshot["name"] = body["name"]
    if body.get("tags") is not None:
        snapshot["tags"] = _tags(body)
    if body.get("public") is not None:
        snapshot["public"] = bool(body["public"])
    snapshot["updated_at"] = now_iso()
    world.state.save()
    return ok(_render(request, "snapshots", snapshot))


async def delete_snapshot(request: web.Request) -> web.Response:
    zone = _zone(request, write=True)
    world = _world(request)
    snapshot = _find(world, "snapshots", zone, request.match_info["snapshot_id"], "snapshot")
    _busy("snapshot", snapshot)
    del world.state.coll("snapshots")[snapshot["id"]]
    world.state.save()
    world.state.snapshot_path(snapshot["id"]).unlink(missing_ok=True)
    return replies.no_content()


def _bucket(world: World, body: dict[str, Any], zone: str) -> tuple[str, str]:
    bucket, key = body.get("bucket") or "", body.get("key") or ""
    if not bucket:
        raise replies.invalid_argument("bucket", "bucket is required", reason="required")
    if not key:
        raise replies.invalid_argument("key", "key is required", reason="required")
    region = world.storage.bucket_region(bucket)
    if region is None:
        raise replies.not_found("bucket", bucket)
    if region != REGION_OF_ZONE[zone]:
        raise replies.invalid_argument(
            "bucket", f"the bucket is in {region}; it must be in the region of the zone "
                      f"({REGION_OF_ZONE[zone]})")
    return bucket, key


async def export_snapshot(request: web.Request) -> web.Response:
    zone = _zone(request, write=True)
    world = _world(request)
    snapshot = _find(world, "snapshots", zone, request.match_info["snapshot_id"], "snapshot")
    iam.require(request, "object_storage", "write")
    body = await json_body(request)
    bucket, key = _bucket(world, body, zone)
    _busy("snapshot", snapshot)
    if not MIN_SIZE <= snapshot["size"] <= MAX_EXPORT:
        raise replies.invalid_argument("snapshot_id", "only snapshots of 1 GB to 1 TB can be "
                                                      "exported")
    snapshot["status"] = "exporting"
    snapshot["updated_at"] = now_iso()
    snapshot["_job"] = "export"
    world.state.save()
    world.spawn(_run_export(world, snapshot, bucket, key))
    return ok(_render(request, "snapshots", snapshot))


async def _run_export(world: World, snapshot: dict[str, Any], bucket: str, key: str) -> None:
    started = time.monotonic()
    path = world.state.snapshot_path(snapshot["id"])
    if not world.faults.fail_export:
        try:
            await asyncio.to_thread(world.storage.export, path, snapshot["size"], bucket, key)
        except Exception:  # the real API fails exports silently: no object appears
            pass
    await asyncio.sleep(max(0.0, world.delays.export - (time.monotonic() - started)))
    snapshot.pop("_job", None)
    snapshot["status"] = "available"
    snapshot["updated_at"] = now_iso()
    world.state.save()


async def import_snapshot(request: web.Request) -> web.Response:
    zone = _zone(request, write=True)
    world = _world(request)
    iam.require(request, "object_storage", "read")
    body = await json_body(request)
    project_id = _project(world, body)
    bucket, key = _bucket(world, body, zone)
    # Refused at once, as the real API does: missing object, not QCOW2, backing file,
    # encrypted or compressed image.
    image_size = await asyncio.to_thread(world.storage.inspect_import, bucket, key)
    size = body.get("size")
    size = image_size if size is None else _size(size)
    if size < image_size:
        raise replies.invalid_argument("size", "size must be at least the image's size")
    snapshot_id = str(uuid.uuid4())
    snapshot = _snapshot(snapshot_id, body.get("name") or f"snp-{snapshot_id[:8]}", size,
                         project_id, _tags(body), zone, now_iso(), None)
    snapshot["_job"] = "import"
    world.state.coll("snapshots")[snapshot_id] = snapshot
    world.state.save()
    world.spawn(_run_import(world, snapshot, bucket, key))
    return ok(_render(request, "snapshots", snapshot))


async def _run_import(world: World, snapshot: dict[str, Any], bucket: str, key: str) -> None:
    started = time.monotonic()
    path = world.state.snapshot_path(snapshot["id"])
    try:
        await asyncio.to_thread(world.storage.import_, bucket, key, path, snapshot["size"])
        status = "available"
    except Exception:
        status = "error"
    await asyncio.sleep(max(0.0, world.delays.import_ - (time.monotonic() - started)))
    snapshot.pop("_job", None)
    snapshot["status"] = status
    snapshot["updated_at"] = now_iso()
    world.state.save()


# -- volume types -----------------------------------------------------------------------------
_PRICES = {"sbs_5k": (0, 110000), "sbs_15k": (0, 160000)}


async def list_volume_types(request: web.Request) -> web.Response:
    zone = _zone(request, write=False)
    types = []
    for iops, name in IOPS_TYPES.items():
        nanos = _PRICES[name][1]
        entry = {"type": name,
                 "pricing": {"currency_code": "EUR", "units": 0, "nanos": nanos},
                 "snapshot_pricing": {"currency_code": "EUR", "units": 0, "nanos": 45000},
                 "specs": {"perf_iops": iops, "class": "sbs"}}
        if request.match_info["version"] == "v1":
            entry["zone"] = zone
        types.append(entry)
    return ok({"volume_types": paginate(types, request), "total_count": len(types)})


def add_routes(app: web.Application) -> None:
    base = "/block/{version:v1|v1alpha1}/zones/{zone}"
    r = app.router
    r.add_get(f"{base}/volume-types", list_volume_types)
    r.add_get(f"{base}/volumes", list_volumes)
    r.add_post(f"{base}/volumes", create_volume)
    r.add_get(f"{base}/volumes/{{volume_id}}", get_volume)
    r.add_patch(f"{base}/volumes/{{volume_id}}", update_volume)
    r.add_delete(f"{base}/volumes/{{volume_id}}", delete_volume)
    r.add_get(f"{base}/snapshots", list_snapshots)
    r.add_post(f"{base}/snapshots", create_snapshot)
    r.add_post(f"{base}/snapshots/import-from-object-storage", import_snapshot)
    r.add_get(f"{base}/snapshots/{{snapshot_id}}", get_snapshot)
    r.add_patch(f"{base}/snapshots/{{snapshot_id}}", update_snapshot)
    r.add_delete(f"{base}/snapshots/{{snapshot_id}}", delete_snapshot)
    r.add_post(f"{base}/snapshots/{{snapshot_id}}/export-to-object-storage", export_snapshot)
