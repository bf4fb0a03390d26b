"""Instance v1, read side: servers with their volumes, and legacy Instance volumes.

SBS volumes are not Instance volumes: asking the Instance API for one answers 404
``instance_volume``, as in the recordings."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.sandbox import iam, replies
from engine.sandbox.replies import multi, ok, paginate
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
    iam.require(request, "instance", "read")
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
    iam.require(request, "instance", "read")
    server_id = request.match_info["server_id"]
    server = _world(request).state.coll("servers").get(server_id)
    if server is None or server["zone"] != request.match_info["zone"]:
        raise replies.not_found("instance_server", server_id)
    return ok({"server": _public(server)})


async def list_volumes(request: web.Request) -> web.Response:
    iam.require(request, "instance", "read")
    volumes = _filter(request, list(_world(request).state.coll("instance_volumes").values()))
    vtype = request.query.get("volume_type")
    if vtype:
        volumes = [v for v in volumes if v["volume_type"] == vtype]
    page = paginate(volumes, request, size_param="per_page")
    return ok({"volumes": page}, headers={"X-Total-Count": str(len(volumes))})


async def get_volume(request: web.Request) -> web.Response:
    iam.require(request, "instance", "read")
    volume_id = request.match_info["volume_id"]
    volume = _world(request).state.coll("instance_volumes").get(volume_id)
    if volume is None or volume["zone"] != request.match_info["zone"]:
        raise replies.not_found("instance_volume", volume_id)
    return ok({"volume": volume})


def _public(server: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in server.items() if not k.startswith("_")}


def add_routes(app: web.Application) -> None:
    base = "/instance/v1/zones/{zone}"
    app.router.add_get(f"{base}/servers", list_servers)
    app.router.add_get(f"{base}/servers/{{server_id}}", get_server)
    app.router.add_get(f"{base}/volumes", list_volumes)
    app.router.add_get(f"{base}/volumes/{{volume_id}}", get_volume)
