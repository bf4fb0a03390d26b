"""The sandbox's HTTP server: the API routes, authentication by X-Auth-Token, injected faults,
and a small admin endpoint (``/_sandbox/...``, no token: it only listens on 127.0.0.1)."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.sandbox import account, block, iam, instance, replies
from engine.sandbox.world import CALLER, GRANTED_SETS, WORLD, World

ADMIN = "/_sandbox/"
log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_EXTRA_HEADERS = web.RequestKey("extra_headers", dict)


def _route(request: web.Request) -> str:
    """What a rate limit counts by: the key, the method and the path pattern."""
    resource = request.match_info.route.resource
    pattern = resource.canonical if resource is not None else request.path
    return f"{request.headers.get('X-Auth-Token', '')} {request.method} {pattern}"


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer carries a request id (what Scaleway support asks for) and, under a rate
    limit, the X-Ratelimit-* headers; errors raised by handlers included."""
    response.headers["X-Request-Id"] = str(uuid.uuid4())
    for name, value in request.get(_EXTRA_HEADERS, {}).items():
        response.headers.setdefault(name, value)


@web.middleware
async def _faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    world: World = request.app[WORLD]
    if request.path.startswith(ADMIN):
        return await handler(request)
    token = request.headers.get("X-Auth-Token", "")
    quota = world.limiter.take(token) if token else None
    if quota is not None:
        request[_EXTRA_HEADERS] = quota.headers()
    if world.faults.latency_ms:
        await asyncio.sleep(world.faults.latency_ms / 1000)
    if quota is not None and quota.over:
        return replies.too_many_requests()
    if request.method == "PATCH" and world.faults.fail_updates:
        raise replies.unavailable()
    code = world.dice.http_error(_route(request))
    if code == 429:
        return replies.too_many_requests()
    if code == 503:
        raise replies.unavailable()
    response = await handler(request)
    # Only POSTs create; a refused one (4xx, raised) was not carried out, so it does not count.
    if request.method == "POST" and response.status < 300 and world.dice.lose_answer():
        raise replies.unavailable()
    return response


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(ADMIN):
        return await handler(request)
    token = request.headers.get("X-Auth-Token", "")
    if not token:
        raise replies.denied_authentication("not_found")
    world: World = request.app[WORLD]
    key = iam.key_for_secret(world, token)
    if key is None:
        raise replies.denied_authentication("invalid_argument")
    request[CALLER] = key
    request[GRANTED_SETS] = iam.permission_sets(world.state, key)
    return await handler(request)


@web.middleware
async def _not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and methods answer JSON, as the real gateway does."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        raise replies.ApiError(404, {"message": "resource is not found", "resource": "route",
                                     "resource_id": request.path, "type": "not_found"}) from None
    except web.HTTPMethodNotAllowed:
        raise replies.ApiError(405, {"message": "method not allowed",
                                     "type": "method_not_allowed"}) from None
    except web.HTTPException:
        raise
    except Exception:
        # A sandbox bug: say so in JSON, as the real API answers its own failures.
        log.exception("sandbox error on %s %s", request.method, request.path)
        raise replies.ApiError(500, {"message": "internal error in the sandbox",
                                     "type": "internal_error"}) from None


async def get_faults(request: web.Request) -> web.Response:
    world: World = request.app[WORLD]
    return replies.ok({**world.faults.as_dict(), "drop_s3": world.storage.drops_left()})


async def set_faults(request: web.Request) -> web.Response:
    """POST {"latency_ms": 200, "rate_429": 0.1, ...}: change only the faults named."""
    world: World = request.app[WORLD]
    try:
        changes = json.loads(await request.read() or b"{}")
        if not isinstance(changes, dict):
            raise ValueError("send a JSON object of fault names and values")
        world.faults.update(changes)
    except ValueError as exc:
        return replies.ok({"message": str(exc), "type": "invalid_arguments"}, status=400)
    world.dice.restart()
    world.limiter.reset()
    if "drop_s3" in changes:
        world.storage.set_drop(world.faults.drop_s3)
    if any(name.startswith("s3_") for name in changes):
        world.storage.set_request_faults(world.faults.s3_request_faults())
    return await get_faults(request)


async def health(request: web.Request) -> web.Response:
    return replies.ok({"ok": True})


async def get_delays(request: web.Request) -> web.Response:
    """How long transitions take (``realistic`` > 0: the recorded durations × it)."""
    return replies.ok(dataclasses.asdict(request.app[WORLD].delays))


def build_app(world: World) -> web.Application:
    # Order: unknown routes first become JSON 404s, then auth, then faults closest to the client.
    app = web.Application(middlewares=[_faults, _auth, _not_found])
    app[WORLD] = world
    app.on_response_prepare.append(_stamp)
    block.add_routes(app)
    account.add_routes(app)
    instance.add_routes(app)
    iam.add_routes(app)
    app.router.add_get(f"{ADMIN}faults", get_faults)
    app.router.add_post(f"{ADMIN}faults", set_faults)
    app.router.add_get(f"{ADMIN}health", health)
    app.router.add_get(f"{ADMIN}delays", get_delays)
    return app
