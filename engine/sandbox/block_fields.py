"""What the Block API's handlers share: the zone and the caller's rights, field checks with
the real API's error answers, listing filters, and how objects are rendered per API version."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.sandbox import iam, replies
from engine.sandbox.replies import multi
from engine.sandbox.seed import GB, IOPS_TYPES, REGION_OF_ZONE
from engine.sandbox.state import TRANSIENT, public
from engine.sandbox.world import WORLD, World

MIN_SIZE = 1 * GB
MAX_SIZE = 10_000 * GB
MAX_EXPORT = 1_000 * GB
# Fields each API version sends (v1alpha1 predates KMS keys and public snapshots).
_ALPHA_DROP = {"volumes": {"kms_key_id"}, "snapshots": {"kms_key_id", "public"}}


def world_of(request: web.Request) -> World:
    world: World = request.app[WORLD]
    world.state.settle()
    return world


def zone_of(request: web.Request, write: bool, resource: str) -> str:
    """The path's zone, once the caller may read (or write) Block ``resource``s."""
    iam.require(request, "block", "write" if write else "read", resource)
    zone = request.match_info["zone"]
    if zone not in REGION_OF_ZONE:
        raise replies.invalid_argument("zone", f"unknown zone {zone!r}", reason="format")
    return zone


def render(request: web.Request, coll: str, obj: dict[str, Any]) -> dict[str, Any]:
    out = public(obj)
    if coll == "snapshots" and out.get("parent_volume"):
        volume = request.app[WORLD].state.coll("volumes").get(out["parent_volume"]["id"])
        if volume is not None:
            out["parent_volume"] = {**out["parent_volume"], "status": volume["status"]}
    if request.match_info["version"] == "v1alpha1":
        for name in _ALPHA_DROP[coll]:
            out.pop(name, None)
    return out


def find(request: web.Request, coll: str, zone: str, ident: str, resource: str,
         action: str = "read") -> dict[str, Any]:
    """The object, if in this zone; another organization's answers 403 (as recorded for
    snapshots), not 404."""
    world: World = request.app[WORLD]
    obj = world.state.coll(coll).get(ident)
    if obj is None or obj["zone"] != zone:
        raise replies.not_found(resource, ident)
    if not _ours(request, obj):
        raise replies.permissions_denied(resource, action)
    return obj


def _ours(request: web.Request, obj: dict[str, Any]) -> bool:
    project = request.app[WORLD].state.coll("projects").get(obj.get("project_id", ""), {})
    return project.get("organization_id") == iam.caller_org(request)


def project_of(request: web.Request, body: dict[str, Any]) -> str:
    project_id = body.get("project_id") or ""
    if not project_id:
        raise replies.invalid_argument("project_id", "project_id is required", reason="required")
    project = request.app[WORLD].state.coll("projects").get(project_id)
    if project is None or project["organization_id"] != iam.caller_org(request):
        raise replies.permissions_denied("project", "write")
    return project_id


def tags_of(body: dict[str, Any]) -> list[str]:
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise replies.invalid_argument("tags", "tags must be a list of strings", reason="format")
    return tags


def size_of(value: Any, name: str = "size") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise replies.invalid_argument(name, "size must be an integer number of bytes",
                                       reason="format")
    if not MIN_SIZE <= value <= MAX_SIZE:
        raise replies.invalid_argument(name, "size must be between 1 GB and 10 TB")
    return value


def iops_of(value: Any) -> int:
    if value is None:
        return 5000
    if value not in IOPS_TYPES:
        raise replies.invalid_argument("perf_iops", "perf_iops must be 5000 or 15000")
    return int(value)


def refuse_busy(resource: str, obj: dict[str, Any]) -> None:
    if obj["status"] in TRANSIENT:
        raise replies.transient(resource, obj["id"], obj["status"])


def filtered(request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The filters both listings share; never another organization's objects."""
    items = [i for i in items if _ours(request, i)]
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
