"""What Scaleway's snapshot import takes: a QCOW2 image (version 2 or 3) with no encryption,
no backing or external data file and no zstd compression. Checked on the image's first bytes
before a restore uploads anything, so a refusal costs no upload and no import."""
from __future__ import annotations

import struct

QCOW2_MAGIC = b"QFI\xfb"
HEAD = 4096    # the header and its extensions fit in the first bytes read


def import_refusal(head: bytes) -> str:
    """Why the import would refuse the image that starts with ``head``, or "" if it takes it."""
    if len(head) < 72 or head[:4] != QCOW2_MAGIC:
        return "it is not a QCOW2 image (Scaleway imports QCOW2 only)"
    version, = struct.unpack_from(">I", head, 4)
    if version not in (2, 3):
        return f"it is a QCOW2 image of version {version} (Scaleway imports versions 2 and 3)"
    backing_offset, backing_size = struct.unpack_from(">QI", head, 8)
    crypt, = struct.unpack_from(">I", head, 32)
    if backing_offset or backing_size:
        return "it is a QCOW2 image with a backing file (Scaleway imports standalone images)"
    if crypt:
        return "it is an encrypted QCOW2 image (Scaleway imports unencrypted images only)"
    if version == 3 and len(head) >= 104:
        incompatible, = struct.unpack_from(">Q", head, 72)
        header_length, = struct.unpack_from(">I", head, 100)
        compression = head[104] if header_length > 104 and len(head) > 104 else 0
        if incompatible & 0b100:
            return "it is a QCOW2 image with an external data file"
        if compression or incompatible & 0b1000:
            return "it is a zstd-compressed QCOW2 image (Scaleway imports zlib or none)"
    return ""
