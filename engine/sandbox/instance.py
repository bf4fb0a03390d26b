"""Instance v1: servers with their volumes, legacy Instance volumes, and attaching or detaching
an SBS volume (``attaching`` → ``attached`` on the volume's reference, ``in_use``; ``detaching``
→ the reference goes, ``available``, ``last_detached_at`` set).

SBS volumes are not Instance volumes: asking the Instance API for one answers 404
``instance_volume``, as in the recordings."""
from __future__ import annotations

from typing import Any

from aiohttp import web

import uuid

from engine.sandbox import iam, replies
from engine.sandbox.replies import json_body, multi, ok, paginate
from engine.sandbox.state import now_iso
from engine.sandbox.world import WORLD


def _world(request: web.Request):
    world = request.app[WORLD]
    world.state.settle()
    return world


def _filter(request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    zone = request.match_info["zone"]
    items = [i for i in items if i["zone"] == zone]
    for param in ("organization", "project"):
        value = request.query.get(param)
        if value:
            items = [i for i in items if i[param] == value]
    name = request.query.get("name")
    if name:
        items = [i for i in items if name in i["name"]]
    tags = multi(request, "tags")
    if tags:
        items = [i for i in items if set(tags) <= set(i.get("tags", []))]
    return sorted(items, key=lambda i: (i["creation_date"], i["id"]), reverse=True)


async def list_servers(request: web.Request) -> web.Response:
    iam.require(request, "instance", "read", "server")
    servers = _filter(request, list(_world(request).state.coll("servers").values()))
    state = request.query.get("state")
    if state:
        servers = [s for s in servers if s["state"] == state]
    wanted = multi(request, "servers")
    if wanted:
        servers = [s for s in servers if s["id"] in wanted]
    page = paginate(servers, request, size_param="per_page")
    return ok({"servers": [_public(s) for s in page]},
              headers={"X-Total-Count": str(len(servers))})


async def get_server(request: web.Request) -> web.Response:
    iam.require(request, "instance", "read", "server")
    server_id = request.match_info["server_id"]
    server = _world(request).state.coll("servers").get(server_id)
    if server is None or server["zone"] != request.match_info["zone"]:
        raise replies.not_found("instance_server", server_id)
    return ok({"server": _public(server)})


async def list_volumes(request: web.Request) -> web.Response:
    iam.require(request, "instance", "read", "volume")
    volumes = _filter(request, list(_world(request).state.coll("instance_volumes").values()))
    vtype = request.query.get("volume_type")
    if vtype:
        volumes = [v for v in volumes if v["volume_type"] == vtype]
    page = paginate(volumes, request, size_param="per_page")
    return ok({"volumes": page}, headers={"X-Total-Count": str(len(volumes))})


async def get_volume(request: web.Request) -> web.Response:
    iam.require(request, "instance", "read", "volume")
    volume_id = request.match_info["volume_id"]
    volume = _world(request).state.coll("instance_volumes").get(volume_id)
    if volume is None or volume["zone"] != request.match_info["zone"]:
        raise replies.not_found("instance_volume", volume_id)
    return ok({"volume": volume})


def _server(request: web.Request) -> dict[str, Any]:
    server_id = request.match_info["server_id"]
    server = _world(request).state.coll("servers").get(server_id)
    if server is None or server["zone"] != request.match_info["zone"]:
        raise replies.not_found("instance_server", server_id)
    return server


def _sbs_volume(request: web.Request, volume_id: str, zone: str) -> dict[str, Any]:
    volume = _world(request).state.coll("volumes").get(volume_id)
    if volume is None or volume["zone"] != zone:
        raise replies.not_found("instance_volume", volume_id)
    return volume


async def attach_volume(request: web.Request) -> web.Response:
    iam.require(request, "instance", "write", "server")
    world = _world(request)
    server = _server(request)
    body = await json_body(request)
    volume = _sbs_volume(request, str(body.get("volume_id")), server["zone"])
    if volume["status"] != "available" or volume["references"]:
        raise replies.precondition("resource_still_in_use",
                                   f"volume {volume['id']} is {volume['status']}")
    ref = {"id": str(uuid.uuid4()), "product_resource_type": "instance_server",
           "product_resource_id": server["id"], "created_at": now_iso(), "type": "exclusive",
           "status": "attaching"}
    volume["references"].append(ref)
    volume["status"] = "in_use"
    volume["updated_at"] = now_iso()
    world.state.schedule_reference(volume, ref["id"], "attached",
                                   world.delays.seconds("attach", volume["size"]))
    index = str(max((int(k) for k in server["volumes"]), default=-1) + 1)
    server["volumes"][index] = {"boot": bool(body.get("boot", False)),
                                "volume_type": "sbs_volume", "id": volume["id"],
                                "state": "available", "zone": server["zone"]}
    server["modification_date"] = now_iso().replace("Z", "+00:00")
    world.state.save()
    return ok({"server": _public(server)})


async def detach_volume(request: web.Request) -> web.Response:
    iam.require(request, "instance", "write", "server")
    world = _world(request)
    server = _server(request)
    body = await json_body(request)
    volume = _sbs_volume(request, str(body.get("volume_id")), server["zone"])
    ref = next((r for r in volume["references"]
                if r["product_resource_id"] == server["id"] and r["status"] == "attached"), None)
    if ref is None:
        raise replies.precondition("resource_not_usable",
                                   f"volume {volume['id']} is not attached to this server")
    ref["status"] = "detaching"
    volume["updated_at"] = now_iso()
    world.state.schedule_reference(volume, ref["id"], "detached",
                                   world.delays.seconds("detach", volume["size"]))
    server["volumes"] = {k: v for k, v in server["volumes"].items() if v["id"] != volume["id"]}
    server["modification_date"] = now_iso().replace("Z", "+00:00")
    world.state.save()
    return ok({"server": _public(server)})


def _public(server: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in server.items() if not k.startswith("_")}


def add_routes(app: web.Application) -> None:
    base = "/instance/v1/zones/{zone}"
    app.router.add_get(f"{base}/servers", list_servers)
    app.router.add_get(f"{base}/servers/{{server_id}}", get_server)
    app.router.add_post(f"{base}/servers/{{server_id}}/attach-volume", attach_volume)
    app.router.add_post(f"{base}/servers/{{server_id}}/detach-volume", detach_volume)
    app.router.add_get(f"{base}/volumes", list_volumes)
    app.router.add_get(f"{base}/volumes/{{volume_id}}", get_volume)
