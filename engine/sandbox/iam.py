"""IAM v1alpha1 (the read side a permission check needs) and the permission model the other
APIs enforce: an API key belongs to an application or to a user, whose policies' rules (their
own, and their groups') grant permission sets; each set grants read or write on one product.

Lists apply their filters on the server, as the real API does (``policy_name``, ``tag``,
``editable``, ``description``, ``expired``, principals...). A denial names the object type
(``snapshot``, ``server``, ``api_key``), not the product."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from datetime import datetime, timezone

from engine.sandbox import replies
from engine.sandbox.replies import multi, ok, paginate
from engine.sandbox.seed import PERMISSION_SETS
from engine.sandbox.state import State
from engine.sandbox.world import CALLER, GRANTED_SETS, WORLD, World

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


def permission_sets(state: State, api_key: dict[str, Any]) -> set[str]:
    """Every permission set the key's bearer (application or user) holds, through its own
    policies and its groups'."""
    app_id, user_id = api_key.get("application_id"), api_key.get("user_id")
    groups = {g["id"] for g in state.coll("groups").values()
              if (app_id and app_id in g.get("application_ids", []))
              or (user_id and user_id in g.get("user_ids", []))}
    out: set[str] = set()
    for policy in state.coll("policies").values():
        if (app_id and policy.get("application_id") == app_id) \
                or (user_id and policy.get("user_id") == user_id) \
                or policy.get("group_id") in groups:
            for rule in state.coll("rules").get(policy["id"], []):
                out.update(rule["permission_set_names"])
    return out


def organization_of(state: State, api_key: dict[str, Any]) -> str:
    """The organization the key's bearer belongs to."""
    bearer = (state.coll("applications").get(api_key.get("application_id") or "")
              or state.coll("users").get(api_key.get("user_id") or "") or {})
    return bearer.get("organization_id") or state.organization_id


def allowed(sets: set[str], product: str, action: str) -> bool:
    if "AllProductsFullAccess" in sets:
        return True
    return any(GRANTS.get(name, ("", frozenset()))[0] == product
               and action in GRANTS[name][1] for name in sets)


def require(request: web.Request, product: str, action: str, resource: str) -> None:
    """403 permissions_denied, naming ``resource`` (the object type), unless the caller's key
    may do ``action`` on ``product``."""
    if not allowed(request[GRANTED_SETS], product, action):
        raise replies.permissions_denied(resource, action)


def caller_org(request: web.Request) -> str:
    world: World = request.app[WORLD]
    return organization_of(world.state, request[CALLER])


# -- routes -----------------------------------------------------------------------------------
def _world(request: web.Request) -> World:
    return request.app[WORLD]


def _public_key(key: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in key.items() if not k.startswith("_")}
    out["secret_key"] = None      # the real API shows a secret only once, at creation
    return out


async def get_api_key(request: web.Request) -> web.Response:
    require(request, "iam", "read", "api_key")
    access = request.match_info["access_key"]
    key = _world(request).state.coll("api_keys").get(access)
    if key is None:
        raise replies.not_found("access_key", access)
    return ok(_public_key(key))


async def list_api_keys(request: web.Request) -> web.Response:
    require(request, "iam", "read", "api_key")
    state = _world(request).state
    keys = list(state.coll("api_keys").values())
    wanted = multi(request, "access_keys") + multi(request, "access_key")
    if wanted:
        keys = [k for k in keys if k["access_key"] in wanted]
    bearer = request.query.get("bearer_id")
    if bearer:
        keys = [k for k in keys if bearer in (k.get("application_id"), k.get("user_id"))]
    bearer_type = request.query.get("bearer_type", "unknown_bearer_type")
    if bearer_type == "application":
        keys = [k for k in keys if k.get("application_id")]
    elif bearer_type == "user":
        keys = [k for k in keys if k.get("user_id")]
    for param in ("application_id", "user_id"):
        if request.query.get(param):
            keys = [k for k in keys if k.get(param) == request.query[param]]
    if request.query.get("description"):
        keys = [k for k in keys if request.query["description"] in k.get("description", "")]
    expired = _flag(request, "expired")
    if expired is not None:
        keys = [k for k in keys if _is_expired(k) == expired]
    keys = _editable(request, keys)
    org = request.query.get("organization_id")
    if org:
        keys = [k for k in keys if organization_of(state, k) == org]
    keys = replies.order(keys, request.query.get("order_by"))
    return ok({"api_keys": [_public_key(k) for k in paginate(keys, request)],
               "total_count": len(keys)})


def _is_expired(key: dict[str, Any]) -> bool:
    expires = key.get("expires_at")
    if not expires:
        return False
    when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    return when <= datetime.now(timezone.utc)


def _flag(request: web.Request, name: str) -> bool | None:
    """A boolean query parameter, None when absent."""
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if value.lower() not in ("true", "false"):
        raise replies.invalid_argument(name, f"{name} must be true or false", reason="format")
    return value.lower() == "true"


def _editable(request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    editable = _flag(request, "editable")
    if editable is None:
        return items
    return [i for i in items if bool(i.get("editable", True)) == editable]


def _tagged(request: web.Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tag = request.query.get("tag")
    return [i for i in items if tag in i.get("tags", [])] if tag else items


async def get_application(request: web.Request) -> web.Response:
    require(request, "iam", "read", "application")
    return ok(_get(request, "applications", "application_id", "application"))


async def list_applications(request: web.Request) -> web.Response:
    require(request, "iam", "read", "application")
    apps = list(_world(request).state.coll("applications").values())
    wanted = multi(request, "application_ids")
    if wanted:
        apps = [a for a in apps if a["id"] in wanted]
    if request.query.get("name"):
        apps = [a for a in apps if request.query["name"] in a["name"]]
    return _listing(request, "applications", _editable(request, _tagged(request, apps)))


async def get_user(request: web.Request) -> web.Response:
    require(request, "iam", "read", "user")
    return ok(_get(request, "users", "user_id", "user"))


async def list_users(request: web.Request) -> web.Response:
    require(request, "iam", "read", "user")
    users = list(_world(request).state.coll("users").values())
    wanted = multi(request, "user_ids")
    if wanted:
        users = [u for u in users if u["id"] in wanted]
    mfa = _flag(request, "mfa")
    if mfa is not None:
        users = [u for u in users if u.get("mfa") == mfa]
    if request.query.get("type"):
        users = [u for u in users if u.get("type") == request.query["type"]]
    return _listing(request, "users", _tagged(request, users))


async def get_group(request: web.Request) -> web.Response:
    require(request, "iam", "read", "group")
    return ok(_get(request, "groups", "group_id", "group"))


async def list_groups(request: web.Request) -> web.Response:
    require(request, "iam", "read", "group")
    groups = list(_world(request).state.coll("groups").values())
    apps, users = multi(request, "application_ids"), multi(request, "user_ids")
    if apps or users:
        groups = [g for g in groups if set(apps) & set(g["application_ids"])
                  or set(users) & set(g.get("user_ids", []))]
    wanted = multi(request, "group_ids")
    if wanted:
        groups = [g for g in groups if g["id"] in wanted]
    if request.query.get("name"):
        groups = [g for g in groups if request.query["name"] in g["name"]]
    return _listing(request, "groups", _tagged(request, groups))


async def get_policy(request: web.Request) -> web.Response:
    require(request, "iam", "read", "policy")
    return ok(_get(request, "policies", "policy_id", "policy"))


async def list_policies(request: web.Request) -> web.Response:
    require(request, "iam", "read", "policy")
    policies = list(_world(request).state.coll("policies").values())
    apps, groups = multi(request, "application_ids"), multi(request, "group_ids")
    users = multi(request, "user_ids")
    no_principal = _flag(request, "no_principal")
    if apps or groups or users or no_principal:
        policies = [p for p in policies
                    if (p.get("application_id") or None) in apps
                    or (p.get("group_id") or None) in groups
                    or (p.get("user_id") or None) in users
                    or (no_principal and not any(p.get(k) for k in (
                        "application_id", "group_id", "user_id")))]
    wanted = multi(request, "policy_ids")
    if wanted:
        policies = [p for p in policies if p["id"] in wanted]
    if request.query.get("policy_name"):
        policies = [p for p in policies if request.query["policy_name"] in p["name"]]
    return _listing(request, "policies", _editable(request, _tagged(request, policies)))


async def list_rules(request: web.Request) -> web.Response:
    require(request, "iam", "read", "rule")
    policy_id = request.query.get("policy_id", "")
    if not policy_id:
        raise replies.invalid_argument("policy_id", "policy_id is required", reason="required")
    if policy_id not in _world(request).state.coll("policies"):
        raise replies.not_found("policy", policy_id)
    rules = _world(request).state.coll("rules").get(policy_id, [])
    return ok({"rules": paginate(rules, request), "total_count": len(rules)})


async def list_permission_sets(request: web.Request) -> web.Response:
    require(request, "iam", "read", "permission_set")
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
    app.router.add_get(f"{base}/users", list_users)
    app.router.add_get(f"{base}/users/{{user_id}}", get_user)
    app.router.add_get(f"{base}/groups", list_groups)
    app.router.add_get(f"{base}/groups/{{group_id}}", get_group)
    app.router.add_get(f"{base}/policies", list_policies)
    app.router.add_get(f"{base}/policies/{{policy_id}}", get_policy)
    app.router.add_get(f"{base}/rules", list_rules)
    app.router.add_get(f"{base}/permission-sets", list_permission_sets)
