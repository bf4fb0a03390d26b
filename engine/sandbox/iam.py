"""IAM v1alpha1 (the read side a permission check needs) and the permission model the other
APIs enforce: an API key belongs to an application, whose policies' rules grant permission
sets; each set grants read or write on one product."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.sandbox import replies
from engine.sandbox.replies import multi, ok, paginate
from engine.sandbox.seed import PERMISSION_SETS
from engine.sandbox.world import GRANTED_SETS, WORLD, World

# permission set -> (product, actions granted)
GRANTS: dict[str, tuple[str, frozenset[str]]] = {
    "BlockStorageFullAccess": ("block", frozenset({"read", "write"})),
    "BlockStorageReadOnly": ("block", frozenset({"read"})),
    "InstancesFullAccess": ("instance", frozenset({"read", "write"})),
    "InstancesReadOnly": ("instance", frozenset({"read"})),
    "ObjectStorageFullAccess": ("object_storage", frozenset({"read", "write"})),
    "ObjectStorageReadOnly": ("object_storage", frozenset({"read"})),
    "ProjectManager": ("project", frozenset({"read", "write"})),
    "ProjectReadOnly": ("project", frozenset({"read"})),
    "IAMManager": ("iam", frozenset({"read", "write"})),
    "IAMReadOnly": ("iam", frozenset({"read"})),
}


def key_for_secret(world: World, secret: str) -> dict[str, Any] | None:
    for key in world.state.coll("api_keys").values():
        if key["secret_key"] == secret:
            return key
    return None


def permission_sets(world: World, api_key: dict[str, Any]) -> set[str]:
    """Every permission set the key's application holds, through its policies and groups."""
    app_id = api_key.get("application_id")
    groups = {g["id"] for g in world.state.coll("groups").values()
              if app_id in g.get("application_ids", [])}
    out: set[str] = set()
    for policy in world.state.coll("policies").values():
        if policy.get("application_id") == app_id or policy.get("group_id") in groups:
            for rule in world.state.coll("rules").get(policy["id"], []):
                out.update(rule["permission_set_names"])
    return out


def allowed(sets: set[str], product: str, action: str) -> bool:
    if "AllProductsFullAccess" in sets:
        return True
    return any(GRANTS.get(name, ("", frozenset()))[0] == product
               and action in GRANTS[name][1] for name in sets)


def require(request: web.Request, product: str, action: str) -> None:
    """403 permissions_denied unless the caller's key may do ``action`` on ``product``."""
    if not allowed(request[GRANTED_SETS], product, action):
        raise replies.permissions_denied(product, action)


# -- routes -----------------------------------------------------------------------------------
def _world(request: web.Request) -> World:
    return request.app[WORLD]


def _public_key(key: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in key.items() if not k.startswith("_")}
    out["secret_key"] = None      # the real API shows a secret only once, at creation
    return out


async def get_api_key(request: web.Request) -> web.Response:
    access = request.match_info["access_key"]
    key = _world(request).state.coll("api_keys").get(access)
    if key is None:
        raise replies.not_found("api_key", access)
    return ok(_public_key(key))


async def list_api_keys(request: web.Request) -> web.Response:
    keys = list(_world(request).state.coll("api_keys").values())
    wanted = multi(request, "access_keys") + multi(request, "access_key")
    if wanted:
        keys = [k for k in keys if k["access_key"] in wanted]
    bearer = request.query.get("bearer_id") or request.query.get("application_id")
    if bearer:
        keys = [k for k in keys if k.get("application_id") == bearer]
    keys = replies.order(keys, request.query.get("order_by"))
    return ok({"api_keys": [_public_key(k) for k in paginate(keys, request)],
               "total_count": len(keys)})


async def get_application(request: web.Request) -> web.Response:
    return ok(_get(request, "applications", "application_id", "application"))


async def list_applications(request: web.Request) -> web.Response:
    apps = list(_world(request).state.coll("applications").values())
    wanted = multi(request, "application_ids")
    if wanted:
        apps = [a for a in apps if a["id"] in wanted]
    if request.query.get("name"):
        apps = [a for a in apps if request.query["name"] in a["name"]]
    return _listing(request, "applications", apps)


async def get_group(request: web.Request) -> web.Response:
    return ok(_get(request, "groups", "group_id", "group"))


async def list_groups(request: web.Request) -> web.Response:
    groups = list(_world(request).state.coll("groups").values())
    apps = multi(request, "application_ids")
    if apps:
        groups = [g for g in groups if set(apps) & set(g["application_ids"])]
    wanted = multi(request, "group_ids")
    if wanted:
        groups = [g for g in groups if g["id"] in wanted]
    return _listing(request, "groups", groups)


async def get_policy(request: web.Request) -> web.Response:
    return ok(_get(request, "policies", "policy_id", "policy"))


async def list_policies(request: web.Request) -> web.Response:
    policies = list(_world(request).state.coll("policies").values())
    apps, groups = multi(request, "application_ids"), multi(request, "group_ids")
    if apps or groups:
        policies = [p for p in policies
                    if p.get("application_id") in apps or p.get("group_id") in groups]
    wanted = multi(request, "policy_ids")
    if wanted:
        policies = [p for p in policies if p["id"] in wanted]
    return _listing(request, "policies", policies)


async def list_rules(request: web.Request) -> web.Response:
    policy_id = request.query.get("policy_id", "")
    if not policy_id:
        raise replies.invalid_argument("policy_id", "policy_id is required", reason="required")
    if policy_id not in _world(request).state.coll("policies"):
        raise replies.not_found("policy", policy_id)
    rules = _world(request).state.coll("rules").get(policy_id, [])
    return ok({"rules": paginate(rules, request), "total_count": len(rules)})


async def list_permission_sets(request: web.Request) -> web.Response:
    sets = [{"id": f"00000000-0000-4000-8000-{index:012d}", "name": name, "scope_type": scope,
             "description": description,
             "categories": [GRANTS.get(name, ("all_products",))[0]]}
            for index, (name, scope, description) in enumerate(PERMISSION_SETS, 1)]
    return ok({"permission_sets": paginate(sets, request), "total_count": len(sets)})


def _get(request: web.Request, coll: str, param: str, resource: str) -> dict[str, Any]:
    ident = request.match_info[param]
    obj = _world(request).state.coll(coll).get(ident)
    if obj is None:
        raise replies.not_found(resource, ident)
    return obj


def _listing(request: web.Request, key: str, items: list[dict[str, Any]]) -> web.Response:
    org = request.query.get("organization_id")
    if org:
        items = [i for i in items if i.get("organization_id") == org]
    items = replies.order(items, request.query.get("order_by"))
    return ok({key: paginate(items, request), "total_count": len(items)})


def add_routes(app: web.Application) -> None:
    base = "/iam/v1alpha1"
    app.router.add_get(f"{base}/api-keys", list_api_keys)
    app.router.add_get(f"{base}/api-keys/{{access_key}}", get_api_key)
    app.router.add_get(f"{base}/applications", list_applications)
    app.router.add_get(f"{base}/applications/{{application_id}}", get_application)
    app.router.add_get(f"{base}/groups", list_groups)
    app.router.add_get(f"{base}/groups/{{group_id}}", get_group)
    app.router.add_get(f"{base}/policies", list_policies)
    app.router.add_get(f"{base}/policies/{{policy_id}}", get_policy)
    app.router.add_get(f"{base}/rules", list_rules)
    app.router.add_get(f"{base}/permission-sets", list_permission_sets)
