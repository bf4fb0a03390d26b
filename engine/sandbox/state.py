"""The sandbox's world, kept in a folder: one JSON document plus one sparse file per volume and
per snapshot. A restarted sandbox reads the same document and so has the same objects.

Objects are stored in the shape the API returns them (v1 field names); keys starting with ``_``
are private (pending status transitions) and never sent.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

COLLECTIONS = ("projects", "volumes", "snapshots", "servers", "instance_volumes",
               "applications", "api_keys", "groups", "policies", "rules", "users")

# Objects in these states are busy: another change waits until they settle.
TRANSIENT = {"creating", "updating", "exporting", "deleting", "snapshotting"}


def now_iso() -> str:
    """The Block/Account/IAM time format: microseconds and a Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def instance_time(iso: str) -> str:
    """The Instance API writes the same instant as +00:00."""
    return iso.replace("Z", "+00:00")


class State:
    """All objects, their files, and their scheduled status changes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.doc: dict[str, Any] = {}
        self.path = self.root / "state.json"

    # -- persistence -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> None:
        self.doc = json.loads(self.path.read_text(encoding="utf-8"))
        self._settle_orphans()

    def init(self, doc: dict[str, Any], save: bool = True) -> None:
        for name in COLLECTIONS:
            doc.setdefault(name, {})
        self.doc = doc
        if save:
            self.save()

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def _settle_orphans(self) -> None:
        """An export or import cut by a stop has no worker any more: end it as the API would
        after a failure (the snapshot is usable again, the object never appears)."""
        for snap in self.doc["snapshots"].values():
            if snap.get("_job") and snap["status"] in ("exporting", "creating"):
                snap.pop("_job")
                snap["status"] = "available" if snap["status"] == "exporting" else "error"
        self.save()

    # -- access ------------------------------------------------------------------------------
    def coll(self, name: str) -> dict[str, dict[str, Any]]:
        return self.doc[name]

    @property
    def organization_id(self) -> str:
        return self.doc["organization_id"]

    def volume_path(self, volume_id: str) -> Path:
        return self.root / "volumes" / f"{volume_id}.raw"

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.root / "snapshots" / f"{snapshot_id}.raw"

    # -- status transitions ------------------------------------------------------------------
    def schedule(self, obj: dict[str, Any], status: str, delay: float) -> None:
        """``obj`` takes ``status`` once ``delay`` seconds have passed (checked on each read)."""
        obj["_next"] = [status, time.time() + delay]

    def schedule_reference(self, volume: dict[str, Any], ref_id: str, status: str,
                           delay: float) -> None:
        """The volume's reference ``ref_id`` becomes ``status`` (``attached``; ``detached``
        removes it) once ``delay`` seconds have passed."""
        volume.setdefault("_refs", []).append([ref_id, status, time.time() + delay])

    def settle(self) -> None:
        """Apply every transition that is due."""
        changed = False
        stamp = time.time()
        for name in ("volumes", "snapshots", "servers"):
            for obj in list(self.doc[name].values()):
                for due in [r for r in obj.get("_refs", []) if r[2] <= stamp]:
                    obj["_refs"].remove(due)
                    self._set_reference(obj, due[0], due[1])
                    changed = True
                nxt = obj.get("_next")
                if nxt and nxt[1] <= stamp and not obj.get("_job"):
                    obj.pop("_next")
                    self._set_status(name, obj, nxt[0])
                    changed = True
        if changed:
            self.save()

    def _set_status(self, coll: str, obj: dict[str, Any], status: str) -> None:
        if coll == "servers":
            obj["state"] = status
            obj["state_detail"] = "booted" if status == "running" else ""
            obj["modification_date"] = instance_time(now_iso())
            return
        if coll == "volumes" and status == "available":
            if _attached(obj):
                status = "in_use"
            clone_of = obj.pop("_clone_of", None)
            if clone_of:         # the snapshot it was made from is free again
                unlink_snapshot(self.doc["snapshots"].get(clone_of[0]), clone_of[1])
        if coll == "snapshots" and status == "available":
            status = snapshot_status(obj)
        obj["status"] = status
        obj["updated_at"] = now_iso()

    def _set_reference(self, volume: dict[str, Any], ref_id: str, status: str) -> None:
        refs = volume.get("references", [])
        ref = next((r for r in refs if r["id"] == ref_id), None)
        if ref is None:
            return
        stamp = now_iso()
        if status == "detached":
            refs.remove(ref)
            if not _attached(volume) and volume["status"] == "in_use":
                volume["status"] = "available"
            volume["last_detached_at"] = stamp
        else:
            ref["status"] = status
            if status == "attached" and volume["status"] == "available":
                volume["status"] = "in_use"
        volume["updated_at"] = stamp


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API sends it: without private keys."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _attached(volume: dict[str, Any]) -> bool:
    return any(ref.get("status") in ("attached", "attaching", "detaching")
               for ref in volume.get("references", []))


def internal_reference() -> dict[str, Any]:
    """What a snapshot's references hold while Scaleway makes it (recorded)."""
    return {"id": str(uuid.uuid4()), "product_resource_type": "internal",
            "product_resource_id": "00000000-0000-0000-0000-000000000000",
            "created_at": now_iso(), "type": "unknown_type", "status": "attached"}


def snapshot_status(snapshot: dict[str, Any]) -> str:
    """A settled snapshot is ``in_use`` while an image or a volume links to it, else
    ``available``; the internal reference of its making goes."""
    snapshot["references"] = [r for r in snapshot.get("references", [])
                              if r.get("product_resource_type") != "internal"]
    linked = any(r.get("type") == "link" and r.get("status") == "attached"
                 for r in snapshot["references"])
    return "in_use" if linked else "available"


def link_snapshot(snapshot: dict[str, Any], volume: dict[str, Any]) -> None:
    """A volume is being made from ``snapshot``: the snapshot is in use until it is made."""
    ref = {"id": str(uuid.uuid4()), "product_resource_type": "sbs_volume",
           "product_resource_id": volume["id"], "created_at": now_iso(), "type": "link",
           "status": "attached"}
    snapshot.setdefault("references", []).append(ref)
    snapshot["status"] = "in_use"
    snapshot["updated_at"] = now_iso()
    volume["_clone_of"] = [snapshot["id"], ref["id"]]


def unlink_snapshot(snapshot: dict[str, Any] | None, ref_id: str) -> None:
    if snapshot is None:
        return
    snapshot["references"] = [r for r in snapshot.get("references", []) if r["id"] != ref_id]
    if snapshot["status"] == "in_use":
        snapshot["status"] = snapshot_status(snapshot)
        snapshot["updated_at"] = now_iso()


def sparse_copy(src: Path, dst: Path, size: int | None = None) -> None:
    """Copy only the data regions of ``src`` (holes stay holes), then set ``dst`` to ``size``.

    A multi-GB volume with a few MB of data copies in milliseconds.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        end = os.fstat(fin.fileno()).st_size
        fout.truncate(end if size is None else max(size, end))
        offset = 0
        while offset < end:
            try:
                start = os.lseek(fin.fileno(), offset, os.SEEK_DATA)
            except OSError:       # ENXIO: only a hole remains
                break
            stop = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            _copy_range(fin.fileno(), fout.fileno(), start, stop - start)
            offset = stop
        if size is not None:
            fout.truncate(size)
    os.replace(tmp, dst)


def _copy_range(fd_in: int, fd_out: int, offset: int, length: int) -> None:
    done = 0
    while done < length:
        n = os.copy_file_range(fd_in, fd_out, length - done, offset + done, offset + done)
        if n == 0:
            break
        done += n


def make_sparse(path: Path, size: int) -> None:
    """A new volume of ``size`` bytes that costs nothing on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
