"""Partition tables and volume managers: the disk stream → the volumes that may hold files.

A disk is read as GPT or MBR (dissect.volume); a partition (or the bare disk) that carries an
LVM2 label is opened as a volume group and each logical volume becomes a volume. A disk with
no partition table is itself the one volume (a bare filesystem, as CSI volumes often are).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import BinaryIO

from dissect.util.stream import RangeStream
from dissect.volume.disk import Disk
from dissect.volume.lvm import LVM2

log = logging.getLogger(__name__)

LVM_LABEL = b"LABELONE"
EXTENDED_MBR_TYPES = {0x05, 0x0F, 0x85}


@dataclass
class Volume:
    """One block range that may hold a filesystem. ``name`` addresses it in paths (p1, vg-lv)."""

    name: str
    description: str
    stream: BinaryIO
    size: int


def find_volumes(disk: BinaryIO, size: int) -> list[Volume]:
    """Every volume on the disk, in table order; the whole disk when it has no partition table."""
    partitions = _partitions(disk)
    if partitions is None:
        whole = Volume("disk", "whole disk (no partition table)", disk, size)
        return _expand_lvm(whole)
    volumes: list[Volume] = []
    for part in partitions:
        volumes.extend(_expand_lvm(part))
    return volumes


def _partitions(disk: BinaryIO) -> list[Volume] | None:
    try:
        table = Disk(disk)
    except Exception:  # no recognisable table: the caller treats the disk as one volume
        return None
    out = []
    for part in table.partitions:
        if part.size <= 0 or part.type in EXTENDED_MBR_TYPES or part.type == 0:
            continue
        kind = type(table.scheme).__name__
        desc = f"{kind} partition {part.number}: {part.type_name}"
        if part.name:
            desc += f" ({part.name})"
        out.append(Volume(f"p{part.number}", desc,
                          RangeStream(disk, part.offset, part.size), part.size))
    return out or None


def _expand_lvm(volume: Volume) -> list[Volume]:
    if not _has_lvm_label(volume.stream):
        return [volume]
    try:
        lvm = LVM2(volume.stream)
    except Exception as exc:
        log.debug("LVM label on %s but unreadable: %s", volume.name, exc)
        return [volume]
    out = []
    for lv in lvm.vg.lv:
        if not lv.is_visible:
            continue
        stream = lv.open()
        size = getattr(stream, "size", 0) or 0
        out.append(Volume(f"{lvm.vg.name}-{lv.name}", f"LVM logical volume {lvm.vg.name}/{lv.name}",
                          stream, size))
    return out or [volume]


def _has_lvm_label(stream: BinaryIO) -> bool:
    # LVM2 writes its label in one of the first four 512-byte sectors.
    stream.seek(0)
    head = stream.read(4 * 512)
    return any(head[i * 512:i * 512 + 8] == LVM_LABEL for i in range(4))
