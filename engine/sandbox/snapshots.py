"""Block API snapshots: list, get, create (a point-in-time copy of the volume's bytes), update,
delete, and the asynchronous export to and import from Object Storage as QCOW2.

As recorded: while a snapshot is made its ``references`` hold an ``internal`` one; an image or
a volume using it makes it ``in_use`` (a ``link`` reference), and it cannot be deleted then;
exports take snapshots of 1 GB to 1 TB, to buckets without SSE-KMS default encryption."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiohttp import web

from engine.sandbox import iam, replies
from engine.sandbox.block_fields import (MAX_EXPORT, MIN_SIZE, find, filtered, project_of,
                                         refuse_busy, render, size_of, tags_of, world_of,
                                         zone_of)
from engine.sandbox.replies import json_body, ok, paginate
from engine.sandbox.seed import REGION_OF_ZONE
from engine.sandbox.state import internal_reference, now_iso, snapshot_status, sparse_copy
from engine.sandbox.world import World


async def list_snapshots(request: web.Request) -> web.Response:
    zone = zone_of(request, write=False, resource="snapshot")
    world = world_of(request)
    snapshots = [s for s in world.state.coll("snapshots").values() if s["zone"] == zone]
    volume_id = request.query.get("volume_id")
    if volume_id:
        snapshots = [s for s in snapshots
                     if (s.get("parent_volume") or {}).get("id") == volume_id]
    snapshots = filtered(request, snapshots)
    return ok({"snapshots": [render(request, "snapshots", s)
                             for s in paginate(snapshots, request)],
               "total_count": len(snapshots)})


async def get_snapshot(request: web.Request) -> web.Response:
    zone = zone_of(request, write=False, resource="snapshot")
    world_of(request)
    snapshot = find(request, "snapshots", zone, request.match_info["snapshot_id"], "snapshot")
    return ok(render(request, "snapshots", snapshot))


async def create_snapshot(request: web.Request) -> web.Response:
    zone = zone_of(request, write=True, resource="snapshot")
    world = world_of(request)
    body = await json_body(request)
    volume = find(request, "volumes", zone, str(body.get("volume_id")), "volume")
    project_id = project_of(request,
                            {"project_id": body.get("project_id") or volume["project_id"]})
    refuse_busy("volume", volume)
    snapshot_id = str(uuid.uuid4())
    await asyncio.to_thread(sparse_copy, world.state.volume_path(volume["id"]),
                            world.state.snapshot_path(snapshot_id))
    stamp = now_iso()
    snapshot = _snapshot(snapshot_id, body.get("name") or f"snp-{snapshot_id[:8]}",
                         volume["size"], project_id, tags_of(body), zone, stamp,
                         {"id": volume["id"], "name": volume["name"], "type": volume["type"],
                          "status": volume["status"]})
    snapshot["public"] = bool(body.get("public", False))
    snapshot["kms_key_id"] = volume.get("kms_key_id")
    world.state.coll("snapshots")[snapshot_id] = snapshot
    world.state.schedule(snapshot, "available", world.delays.seconds("snapshot", volume["size"]))
    world.state.save()
    return ok(render(request, "snapshots", snapshot))


def _snapshot(snapshot_id: str, name: str, size: int, project_id: str, tags: list[str],
              zone: str, stamp: str, parent: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": snapshot_id, "name": name, "size": size, "project_id": project_id,
            "created_at": stamp, "updated_at": stamp, "references": [internal_reference()],
            "status": "creating",
            "tags": tags, "zone": zone, "class": "sbs", "public": False, "kms_key_id": None,
            "parent_volume": parent}


async def update_snapshot(request: web.Request) -> web.Response:
    zone = zone_of(request, write=True, resource="snapshot")
    world = world_of(request)
    snapshot = find(request, "snapshots", zone, request.match_info["snapshot_id"], "snapshot",
                    "write")
    body = await json_body(request)
    if body.get("name"):
        snapshot["name"] = body["name"]
    if body.get("tags") is not None:
        snapshot["tags"] = tags_of(body)
    if body.get("public") is not None:
        snapshot["public"] = bool(body["public"])
    snapshot["updated_at"] = now_iso()
    world.state.save()
    return ok(render(request, "snapshots", snapshot))


async def delete_snapshot(request: web.Request) -> web.Response:
    zone = zone_of(request, write=True, resource="snapshot")
    world = world_of(request)
    snapshot = find(request, "snapshots", zone, request.match_info["snapshot_id"], "snapshot",
                    "write")
    refuse_busy("snapshot", snapshot)
    if snapshot["status"] == "in_use":
        raise replies.precondition("resource_still_in_use",
                                   "an image or a volume still uses this snapshot")
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
    zone = zone_of(request, write=True, resource="snapshot")
    world = world_of(request)
    snapshot = find(request, "snapshots", zone, request.match_info["snapshot_id"], "snapshot")
    iam.require(request, "object_storage", "write", "bucket")
    body = await json_body(request)
    bucket, key = _bucket(world, body, zone)
    refuse_busy("snapshot", snapshot)
    if not MIN_SIZE <= snapshot["size"] <= MAX_EXPORT:
        raise replies.invalid_argument("snapshot_id", "only snapshots of 1 GB to 1 TB can be "
                                                      "exported")
    if await asyncio.to_thread(world.storage.bucket_kms_encrypted, bucket):
        raise replies.invalid_argument(
            "bucket", "buckets with SSE-KMS default encryption are not supported for exports")
    snapshot["status"] = "exporting"
    snapshot["updated_at"] = now_iso()
    snapshot["_job"] = "export"
    world.state.save()
    world.spawn(_run_export(world, snapshot, bucket, key))
    return ok(render(request, "snapshots", snapshot))


async def _run_export(world: World, snapshot: dict[str, Any], bucket: str, key: str) -> None:
    started = time.monotonic()
    path = world.state.snapshot_path(snapshot["id"])
    if not world.faults.fail_export:
        try:
            await asyncio.to_thread(world.storage.export, path, snapshot["size"], bucket, key)
        except Exception:  # the real API fails exports silently: no object appears
            pass
    await asyncio.sleep(max(0.0, world.delays.seconds("export", snapshot["size"])
                            - (time.monotonic() - started)))
    snapshot.pop("_job", None)
    snapshot["status"] = snapshot_status(snapshot)
    snapshot["updated_at"] = now_iso()
    world.state.save()


async def import_snapshot(request: web.Request) -> web.Response:
    zone = zone_of(request, write=True, resource="snapshot")
    world = world_of(request)
    iam.require(request, "object_storage", "read", "object")
    body = await json_body(request)
    project_id = project_of(request, body)
    bucket, key = _bucket(world, body, zone)
    # Refused at once, as the real API does: missing object, not QCOW2, backing file,
    # encrypted or compressed image.
    image_size = await asyncio.to_thread(world.storage.inspect_import, bucket, key)
    size = body.get("size")
    size = image_size if size is None else size_of(size)
    if size < image_size:
        raise replies.invalid_argument("size", "size must be at least the image's size")
    snapshot_id = str(uuid.uuid4())
    snapshot = _snapshot(snapshot_id, body.get("name") or f"snp-{snapshot_id[:8]}", size,
                         project_id, tags_of(body), zone, now_iso(), None)
    snapshot["_job"] = "import"
    world.state.coll("snapshots")[snapshot_id] = snapshot
    world.state.save()
    world.spawn(_run_import(world, snapshot, bucket, key))
    return ok(render(request, "snapshots", snapshot))


async def _run_import(world: World, snapshot: dict[str, Any], bucket: str, key: str) -> None:
    started = time.monotonic()
    path = world.state.snapshot_path(snapshot["id"])
    try:
        await asyncio.to_thread(world.storage.import_, bucket, key, path, snapshot["size"])
        status = "available"
    except Exception:
        status = "error"
    await asyncio.sleep(max(0.0, world.delays.seconds("import", snapshot["size"])
                            - (time.monotonic() - started)))
    snapshot.pop("_job", None)
    snapshot["status"] = snapshot_status(snapshot) if status == "available" else status
    snapshot["updated_at"] = now_iso()
    world.state.save()
