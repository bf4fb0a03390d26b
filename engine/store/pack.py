"""Pack files: many encrypted blobs, then an encrypted table of contents (TOC) at the end.

Layout (docs/FORMAT.md, "Packs")::

    "SRPACK\\x00\\x01" | blob | blob | … | sealed TOC | u32le len(sealed TOC) | "SRTC"
"""
from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from engine.store.crypto import IntegrityError, Sealer

PACK_MAGIC = b"SRPACK\x00\x01"
TRAILER_MAGIC = b"SRTC"
TRAILER = struct.Struct("<I4s")
ENTRY = struct.Struct("<BB32sIII")  # type, flags, id, offset, stored length, raw length

BLOB_DATA = 0
BLOB_TREE = 1


@dataclass(frozen=True)
class BlobEntry:
    type: int
    flags: int
    id: bytes
    offset: int
    stored_len: int
    raw_len: int


def new_pack_id() -> str:
    return os.urandom(16).hex()


def pack_name(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


def blob_ad(blob_type: int, blob_id: bytes) -> bytes:
    return bytes([blob_type]) + blob_id


def toc_ad(pack_id: str) -> bytes:
    return b"strongroom pack toc " + bytes.fromhex(pack_id)


def encode_entries(entries: Sequence[BlobEntry]) -> bytes:
    return b"".join(ENTRY.pack(e.type, e.flags, e.id, e.offset, e.stored_len, e.raw_len)
                    for e in entries)


def decode_entries(raw: bytes | memoryview) -> list[BlobEntry]:
    if len(raw) % ENTRY.size:
        raise IntegrityError("a blob table has a bad length")
    return [BlobEntry(*fields) for fields in ENTRY.iter_unpack(raw)]


def build_trailer(sealer: Sealer, pack_id: str, entries: Sequence[BlobEntry]) -> bytes:
    sealed = sealer.seal_object(encode_entries(entries), toc_ad(pack_id), compress=False)
    return sealed + TRAILER.pack(len(sealed), TRAILER_MAGIC)


def parse_toc(sealer: Sealer, pack_id: str, tail: bytes, pack_size: int) -> list[BlobEntry]:
    """Entries from the last bytes of a pack (``tail`` must hold the whole sealed TOC)."""
    if len(tail) < TRAILER.size:
        raise IntegrityError(f"pack {pack_id} is truncated")
    toc_len, magic = TRAILER.unpack(tail[-TRAILER.size:])
    if magic != TRAILER_MAGIC or toc_len + TRAILER.size + len(PACK_MAGIC) > pack_size:
        raise IntegrityError(f"pack {pack_id} has no valid table of contents")
    if toc_len + TRAILER.size > len(tail):
        raise ValueError(toc_len + TRAILER.size)  # caller re-reads a longer tail
    sealed = tail[-TRAILER.size - toc_len:-TRAILER.size]
    entries = decode_entries(sealer.open_object(sealed, toc_ad(pack_id), f"pack {pack_id} TOC"))
    return entries
