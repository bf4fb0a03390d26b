"""Block Storage (SBS) under /block/v1/ and /block/v1alpha1/: the routes, and volume types.
Volumes are in ``volumes``, snapshots with export and import in ``snapshots``.

Each change answers at once with the object in its transient status (``creating``,
``updating``, ``exporting``); the final status comes after the configured delay, as on the
real API. Volume bytes live in sparse files; a snapshot is a point-in-time copy of them.
"""
from __future__ import annotations

from aiohttp import web

from engine.sandbox import snapshots, volumes
from engine.sandbox.block_fields import zone_of
from engine.sandbox.replies import ok, paginate
from engine.sandbox.seed import IOPS_TYPES

_PRICES = {"sbs_5k": (0, 110000), "sbs_15k": (0, 160000)}


async def list_volume_types(request: web.Request) -> web.Response:
    zone = zone_of(request, write=False, resource="volume_type")
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
    r.add_get(f"{base}/volumes", volumes.list_volumes)
    r.add_post(f"{base}/volumes", volumes.create_volume)
    r.add_get(f"{base}/volumes/{{volume_id}}", volumes.get_volume)
    r.add_patch(f"{base}/volumes/{{volume_id}}", volumes.update_volume)
    r.add_delete(f"{base}/volumes/{{volume_id}}", volumes.delete_volume)
    r.add_get(f"{base}/snapshots", snapshots.list_snapshots)
    r.add_post(f"{base}/snapshots", snapshots.create_snapshot)
    r.add_post(f"{base}/snapshots/import-from-object-storage", snapshots.import_snapshot)
    r.add_get(f"{base}/snapshots/{{snapshot_id}}", snapshots.get_snapshot)
    r.add_patch(f"{base}/snapshots/{{snapshot_id}}", snapshots.update_snapshot)
    r.add_delete(f"{base}/snapshots/{{snapshot_id}}", snapshots.delete_snapshot)
    r.add_post(f"{base}/snapshots/{{snapshot_id}}/export-to-object-storage",
               snapshots.export_snapshot)
