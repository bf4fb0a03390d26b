"""The image layer: QCOW2 (as Scaleway exports it) or raw, turned into one readable disk stream."""
from __future__ import annotations

import io
from typing import BinaryIO

from dissect.hypervisor.disk.qcow2 import QCow2

from engine.explore.errors import UnsupportedImageError

QCOW2_MAGIC = b"QFI\xfb"


def image_size(fh: BinaryIO) -> int:
    size = getattr(fh, "size", None)
    if isinstance(size, int):
        return size
    pos = fh.tell()
    end = fh.seek(0, io.SEEK_END)
    fh.seek(pos)
    return end


def detect_format(fh: BinaryIO) -> str:
    fh.seek(0)
    return "qcow2" if fh.read(4) == QCOW2_MAGIC else "raw"


def open_disk(fh: BinaryIO) -> tuple[BinaryIO, str, int]:
    """The virtual disk inside ``fh``: (stream, format, virtual size)."""
    fmt = detect_format(fh)
    if fmt == "raw":
        fh.seek(0)
        return fh, fmt, image_size(fh)
    try:
        qcow = QCow2(fh, allow_no_backing_file=True, allow_no_data_file=True)
    except NotImplementedError as exc:  # encrypted QCOW2 and other features dissect lacks
        raise UnsupportedImageError(f"cannot decode this QCOW2 image: {exc}") from None
    except Exception as exc:
        raise UnsupportedImageError(f"damaged or unsupported QCOW2 image: {exc}") from None
    if qcow.needs_backing_file or qcow.needs_data_file:
        raise UnsupportedImageError("this QCOW2 image needs a backing or data file that a "
                                    "backup does not hold; back up a flattened image")
    stream = qcow.open()
    return stream, fmt, qcow.size
