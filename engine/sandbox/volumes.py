"""Block API volumes: list (filters, pagination), get, create from empty or from a snapshot,
update (name, tags, size, IOPS), delete. Volume bytes live in sparse files.

As recorded on the real API: a volume made from a snapshot may not be smaller than it (412
``precondition_failed``, ``resource_not_usable``); IOPS cannot change while the volume is
``creating`` (400 on ``perf_iops``); the snapshot a volume is being made from is ``in_use``
(a ``link`` reference) until the volume is ``available``; ``kms_key_id`` is stored, and passes
from a volume to its snapshots and from a snapshot to the volumes made of it."""
from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

from aiohttp import web

from engine.sandbox import replies
from engine.sandbox.block_fields import (find, filtered, iops_of, project_of, refuse_busy,
                                         render, size_of, tags_of, world_of, zone_of)
from engine.sandbox.replies import json_body, multi, ok, paginate
from engine.sandbox.seed import IOPS_TYPES
from engine.sandbox.state import link_snapshot, make_sparse, now_iso, sparse_copy

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def list_volumes(request: web.Request) -> web.Response:
    zone = zone_of(request, write=False, resource="volume")
    world = world_of(request)
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
    volumes = filtered(request, volumes)
    return ok({"total_count": len(volumes),
               "volumes": [render(request, "volumes", v) for v in paginate(volumes, request)]})


async def get_volume(request: web.Request) -> web.Response:
    zone = zone_of(request, write=False, resource="volume")
    world_of(request)
    volume = find(request, "volumes", zone, request.match_info["volume_id"], "volume")
    return ok(render(request, "volumes", volume))


def kms_key_of(body: dict[str, Any]) -> str | None:
    key = body.get("kms_key_id")
    if key is None or key == "":
        return None
    if not isinstance(key, str) or not _UUID.match(key):
        raise replies.invalid_argument("kms_key_id", "kms_key_id must be a UUID",
                                       reason="format")
    return key


async def create_volume(request: web.Request) -> web.Response:
    zone = zone_of(request, write=True, resource="volume")
    world = world_of(request)
    body = await json_body(request)
    project_id = project_of(request, body)
    iops = iops_of(body.get("perf_iops"))
    name = body.get("name") or f"vol-{uuid.uuid4().hex[:8]}"
    kms_key_id = kms_key_of(body)
    from_empty, from_snapshot = body.get("from_empty"), body.get("from_snapshot")
    if bool(from_empty) == bool(from_snapshot):
        raise replies.invalid_argument("from_empty", "give exactly one of from_empty and "
                                       "from_snapshot", reason="required")
    volume_id = str(uuid.uuid4())
    path = world.state.volume_path(volume_id)
    parent = None
    if from_empty:
        size = size_of(from_empty.get("size"))
        await asyncio.to_thread(make_sparse, path, size)
        delay = world.delays.seconds("volume", size)
    else:
        snapshot = find(request, "snapshots", zone, str(from_snapshot.get("snapshot_id")),
                        "snapshot")
        refuse_busy("snapshot", snapshot)
        size = from_snapshot.get("size")
        # the SDK sends 0 when no size is given: the snapshot's size, as on the real API
        size = snapshot["size"] if size in (None, 0) else size_of(size)
        if size < snapshot["size"]:
            raise replies.precondition(
                "resource_not_usable",
                f"the volume must be at least as large as its snapshot "
                f"({snapshot['size']} bytes)")
        parent = snapshot["id"]
        kms_key_id = kms_key_id or snapshot.get("kms_key_id")
        await asyncio.to_thread(sparse_copy, world.state.snapshot_path(parent), path, size)
        delay = world.delays.seconds("volume", size)
    stamp = now_iso()
    volume = {"id": volume_id, "name": name, "type": IOPS_TYPES[iops], "size": size,
              "project_id": project_id, "created_at": stamp, "updated_at": stamp,
              "references": [], "parent_snapshot_id": parent, "status": "creating",
              "tags": tags_of(body), "specs": {"perf_iops": iops, "class": "sbs"},
              "last_detached_at": None, "kms_key_id": kms_key_id, "zone": zone}
    if parent is not None:
        link_snapshot(world.state.coll("snapshots")[parent], volume)
    world.state.coll("volumes")[volume_id] = volume
    world.state.schedule(volume, "available", delay)
    world.state.save()
    return ok(render(request, "volumes", volume))


async def update_volume(request: web.Request) -> web.Response:
    zone = zone_of(request, write=True, resource="volume")
    world = world_of(request)
    volume = find(request, "volumes", zone, request.match_info["volume_id"], "volume", "write")
    body = await json_body(request)
    iops = body.get("perf_iops")
    retune = iops is not None and iops != volume["specs"]["perf_iops"]
    if retune and volume["status"] == "creating":
        # recorded: a 400 on the argument, not the 409 transient_state of other changes
        raise replies.invalid_argument("perf_iops", "the volume is being created: its IOPS "
                                       "can be changed once it is available")
    refuse_busy("volume", volume)
    resize = body.get("size") is not None and body["size"] != volume["size"]
    if resize:
        size = size_of(body["size"])
        if size < volume["size"]:
            raise replies.invalid_argument("size", "a volume can only grow")
        await asyncio.to_thread(_grow, world.state.volume_path(volume["id"]), size)
        volume["size"] = size
    if retune:
        iops = iops_of(iops)
        volume["specs"] = {"perf_iops": iops, "class": "sbs"}
        volume["type"] = IOPS_TYPES[iops]
    if body.get("name"):
        volume["name"] = body["name"]
    if body.get("tags") is not None:
        volume["tags"] = tags_of(body)
    volume["updated_at"] = now_iso()
    if resize or retune:
        volume["status"] = "updating"
        world.state.schedule(volume, "available", world.delays.seconds("update", volume["size"]))
    world.state.save()
    return ok(render(request, "volumes", volume))


def _grow(path: Any, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


async def delete_volume(request: web.Request) -> web.Response:
    zone = zone_of(request, write=True, resource="volume")
    world = world_of(request)
    volume = find(request, "volumes", zone, request.match_info["volume_id"], "volume", "write")
    if any(r["status"] in ("attached", "attaching", "detaching")
           for r in volume["references"]):
        raise replies.precondition("resource_still_in_use",
                                   "detach the volume from its server first")
    refuse_busy("volume", volume)
    del world.state.coll("volumes")[volume["id"]]
    world.state.save()
    world.state.volume_path(volume["id"]).unlink(missing_ok=True)
    return replies.no_content()
