"""JSON answers and the error bodies of the real API (shapes from the recordings and from
the Scaleway SDKs' error types)."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# Scaleway sends these on every answer (the server adds X-Request-Id, see server.py).
_HEADERS = {"Server": "Scaleway API Gateway (sandbox)"}


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers={**_HEADERS, **(headers or {})})


def no_content() -> web.Response:
    return web.Response(status=204, headers=_HEADERS)


class ApiError(web.HTTPException):
    """Raised by a handler; aiohttp answers it as is: the JSON body the real API sends."""

    def __init__(self, status: int, body: dict[str, Any],
                 headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        super().__init__(text=json.dumps(body), content_type="application/json",
                         headers={**_HEADERS, **(headers or {})})


def not_found(resource: str, resource_id: str) -> ApiError:
    return ApiError(404, {"message": "resource is not found", "resource": resource,
                          "resource_id": resource_id, "type": "not_found"})


def invalid_argument(name: str, help_message: str, reason: str = "constraint") -> ApiError:
    return ApiError(400, {"details": [{"argument_name": name, "reason": reason,
                                       "help_message": help_message}],
                          "message": "invalid argument(s)", "type": "invalid_arguments"})


def transient(resource: str, resource_id: str, current: str) -> ApiError:
    return ApiError(409, {"message": "resource is in a transient state", "resource": resource,
                          "resource_id": resource_id, "current_state": current,
                          "type": "transient_state"})


def precondition(precondition_name: str, help_message: str) -> ApiError:
    return ApiError(412, {"help_message": help_message, "message": "precondition is not respected",
                          "precondition": precondition_name, "type": "precondition_failed"})


def permissions_denied(resource: str, action: str) -> ApiError:
    """``resource`` names the object type (snapshot, volume, server, api_key), as recorded."""
    return ApiError(403, {"details": [{"action": action, "resource": resource}],
                          "message": "insufficient permissions", "type": "permissions_denied"})


def denied_authentication(reason: str) -> ApiError:
    return ApiError(401, {"message": "authentication is denied", "method": "api_key",
                          "reason": reason, "type": "denied_authentication"})


def too_many_requests() -> web.Response:
    """The gateway's 429, as recorded: no body, no Content-Type, no Retry-After."""
    return web.Response(status=429, headers={**_HEADERS, "X-Envoy-Ratelimited": "true"})


def unavailable() -> ApiError:
    return ApiError(503, {"message": "service is temporarily unavailable",
                          "type": "service_unavailable"})


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (an empty one for no body); 400 for anything else."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid_argument("body", "the request body is not valid JSON",
                               reason="format") from None
    if not isinstance(body, dict):
        raise invalid_argument("body", "the request body must be a JSON object", reason="format")
    return body


def paginate(items: list[Any], request: web.Request, size_param: str = "page_size",
             default_size: int = 50, max_size: int = 100) -> list[Any]:
    """The page asked for (1-based); past the end, an empty page, as the real API does."""
    page = _int_param(request, "page", 1)
    size = _int_param(request, size_param, default_size)
    if page < 1:
        raise invalid_argument("page", "page must be >= 1")
    if not 1 <= size <= max_size:
        raise invalid_argument(size_param, f"{size_param} must be between 1 and {max_size}")
    start = (page - 1) * size
    return items[start:start + size]


def _int_param(request: web.Request, name: str, default: int) -> int:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise invalid_argument(name, f"{name} must be an integer", reason="format") from None


def multi(request: web.Request, name: str) -> list[str]:
    """A list parameter: repeated (``a=1&a=2``) or comma-joined (the Instance API's way)."""
    out: list[str] = []
    for value in request.query.getall(name, []):
        out.extend(v for v in value.split(",") if v)
    return out


def order(items: list[dict[str, Any]], order_by: str | None, default: str = "created_at_asc",
          ) -> list[dict[str, Any]]:
    key = order_by or default
    field, _, direction = key.rpartition("_")
    if direction not in ("asc", "desc") or not field:
        raise invalid_argument("order_by", f"unknown order {key!r}")
    return sorted(items, key=lambda obj: (str(obj.get(field, "")), obj.get("id", "")),
                  reverse=direction == "desc")
