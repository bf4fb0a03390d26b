"""QCOW2 v3 images of sparse raw volume files, written and read without qemu.

The sandbox's export writes what Scaleway's export writes: a QCOW2 v3 image whose virtual size is
the volume's size. `write_qcow2` streams it sequentially (so it can feed a multipart upload):
header, L1 table, refcount table and blocks, L2 tables, then the data clusters. Holes of the raw
file are never read (SEEK_DATA / SEEK_HOLE) and all-zero clusters are not stored.

The sandbox's import reads what Scaleway's import accepts: `read_qcow2` checks the image like the
real API does (QCOW2 only; no backing file, no encryption, no zstd compression) and fills a sparse
raw file. Refusals raise `ImageRefused`, whose `.status` and `.body` are the API's error answer.

Format reference: qemu's docs/interop/qcow2.txt.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

MAGIC = b"QFI\xfb"
CLUSTER_BITS = 16
CLUSTER_SIZE = 1 << CLUSTER_BITS
HEADER_LENGTH = 112  # v3 header including the compression type byte and its padding
REFCOUNT_ORDER = 4  # 16-bit refcounts, qemu's default
_REFCOUNTS_PER_BLOCK = CLUSTER_SIZE * 8 // (1 << REFCOUNT_ORDER)
_ENTRIES_PER_TABLE = CLUSTER_SIZE // 8  # L2 entries per L2 table, refcount table entries per cluster
_COPIED = 1 << 63  # "refcount is exactly one": set on every entry we write
_COMPRESSED = 1 << 62
_OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00
_ZERO_CLUSTER = bytes(CLUSTER_SIZE)

# Guards against absurd images: Scaleway snapshots go up to 10 TB.
MAX_VIRTUAL_SIZE = 16 * 1024**4
_HEADER = struct.Struct(">4sIQIIQIIQQIIQQQQII")  # the 104 bytes common to v3 headers


class ApiError(Exception):
    """An error the sandbox's HTTP layer answers as is: HTTP `.status`, JSON `.body`."""

    def __init__(self, message: str, status: int, body: dict) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ImageRefused(ApiError):
    """An image the (real) import refuses (400 `invalid_arguments`, the message in `details`)."""

    def __init__(self, help_message: str, *, argument: str = "key") -> None:
        super().__init__(help_message, 400, {
            "details": [
                {"argument_name": argument, "reason": "constraint", "help_message": help_message}
            ],
            "message": "invalid argument(s)",
            "type": "invalid_arguments",
        })


# --- writing ---------------------------------------------------------------------------------


@dataclass
class Qcow2Plan:
    """Where everything goes in the image, computed before the first byte is written."""

    virtual_size: int
    data_clusters: list[int]  # guest cluster indexes holding non-zero data, ascending
    l1_size: int
    l1_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    refcount_blocks: int
    l2_tables: list[int] = field(default_factory=list)  # L1 indexes that get an L2 table, ascending
    first_data_offset: int = 0

    @property
    def total_clusters(self) -> int:
        return self.first_data_offset // CLUSTER_SIZE + len(self.data_clusters)

    @property
    def image_size(self) -> int:
        """The exact length in bytes of the image `write_qcow2` produces."""
        return self.total_clusters * CLUSTER_SIZE


def data_ranges(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of the allocated ranges of an open file up to `size`, skipping holes."""
    end_of_file = min(size, os.fstat(fd).st_size)
    pos = 0
    while pos < end_of_file:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos
                return
            if exc.errno == errno.EINVAL:  # the file system cannot tell: everything is data
                yield pos, end_of_file
                return
            raise
        if start >= end_of_file:
            return
        stop = min(os.lseek(fd, start, os.SEEK_HOLE), end_of_file)
        yield start, stop
        pos = stop


def _candidate_clusters(fd: int, size: int) -> Iterator[int]:
    """Guest cluster indexes that overlap allocated data of the file, ascending, no duplicates."""
    last = -1
    for start, stop in data_ranges(fd, size):
        for index in range(max(start // CLUSTER_SIZE, last + 1), (stop - 1) // CLUSTER_SIZE + 1):
            yield index
            last = index


def _read_cluster(fd: int, index: int, buf: bytearray) -> memoryview:
    """Read guest cluster `index` into `buf`; bytes past the end of the file read as zeros."""
    view = memoryview(buf)
    got = os.preadv(fd, [view], index * CLUSTER_SIZE)
    if got < CLUSTER_SIZE:
        view[got:] = _ZERO_CLUSTER[got:]
    return view


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def plan_qcow2(fd: int, size: int) -> Qcow2Plan:
    """Scan a raw file (open fd) of virtual size `size` and lay out its QCOW2 image."""
    if size < 0 or size > MAX_VIRTUAL_SIZE:
        raise ValueError(f"virtual size {size} out of range")
    buf = bytearray(CLUSTER_SIZE)
    data_clusters = [
        index
        for index in _candidate_clusters(fd, size)
        if _read_cluster(fd, index, buf) != _ZERO_CLUSTER
    ]
    guest_clusters = _ceil_div(size, CLUSTER_SIZE)
    l1_size = _ceil_div(guest_clusters, _ENTRIES_PER_TABLE)
    l1_clusters = _ceil_div(l1_size * 8, CLUSTER_SIZE)  # none for a zero-sized image
    l2_tables = sorted({index // _ENTRIES_PER_TABLE for index in data_clusters})
    fixed = 1 + l1_clusters + len(l2_tables) + len(data_clusters)
    # The refcount structures count themselves: grow them until they cover every cluster.
    blocks, table_clusters = 1, 1
    while True:
        total = fixed + table_clusters + blocks
        need_blocks = _ceil_div(total, _REFCOUNTS_PER_BLOCK)
        need_table = max(1, _ceil_div(need_blocks * 8, CLUSTER_SIZE))
        if (need_blocks, need_table) == (blocks, table_clusters):
            break
        blocks, table_clusters = max(blocks, need_blocks), max(table_clusters, need_table)
    l1_offset = CLUSTER_SIZE if l1_clusters else 0
    refcount_table_offset = CLUSTER_SIZE + l1_clusters * CLUSTER_SIZE
    first_l2 = refcount_table_offset + (table_clusters + blocks) * CLUSTER_SIZE
    return Qcow2Plan(
        virtual_size=size,
        data_clusters=data_clusters,
        l1_size=l1_size,
        l1_offset=l1_offset,
        refcount_table_offset=refcount_table_offset,
        refcount_table_clusters=table_clusters,
        refcount_blocks=blocks,
        l2_tables=l2_tables,
        first_data_offset=first_l2 + len(l2_tables) * CLUSTER_SIZE,
    )


def _header(plan: Qcow2Plan) -> bytes:
    fixed = _HEADER.pack(
        MAGIC, 3, 0, 0, CLUSTER_BITS, plan.virtual_size, 0, plan.l1_size, plan.l1_offset,
        plan.refcount_table_offset, plan.refcount_table_clusters, 0, 0,
        0, 0, 0,  # incompatible, compatible, autoclear features: none
        REFCOUNT_ORDER, HEADER_LENGTH,
    )
    compression_type = bytes(8)  # zlib (0) + 7 bytes padding to 8-byte alignment
    end_of_extensions = bytes(8)  # header extension type 0, length 0
    header = fixed + compression_type + end_of_extensions
    return header + bytes(CLUSTER_SIZE - len(header))


def _metadata(plan: Qcow2Plan) -> Iterator[bytes]:
    """Yield the clusters before the data: header, L1, refcount table and blocks, L2 tables."""
    yield _header(plan)
    l2_offset = {
        l1_index: plan.refcount_table_offset
        + (plan.refcount_table_clusters + plan.refcount_blocks + n) * CLUSTER_SIZE
        for n, l1_index in enumerate(plan.l2_tables)
    }
    l1 = bytearray(_ceil_div(plan.l1_size * 8, CLUSTER_SIZE) * CLUSTER_SIZE)
    for l1_index, offset in l2_offset.items():
        struct.pack_into(">Q", l1, l1_index * 8, offset | _COPIED)
    if l1:
        yield bytes(l1)
    table = bytearray(plan.refcount_table_clusters * CLUSTER_SIZE)
    first_block = plan.refcount_table_offset + plan.refcount_table_clusters * CLUSTER_SIZE
    for n in range(plan.refcount_blocks):
        struct.pack_into(">Q", table, n * 8, first_block + n * CLUSTER_SIZE)
    yield bytes(table)
    remaining = plan.total_clusters
    for _ in range(plan.refcount_blocks):
        in_block = min(remaining, _REFCOUNTS_PER_BLOCK)
        yield b"\x00\x01" * in_block + bytes((_REFCOUNTS_PER_BLOCK - in_block) * 2)
        remaining -= in_block
    host = plan.first_data_offset
    clusters = iter(plan.data_clusters)
    pending = next(clusters, None)
    for l1_index in plan.l2_tables:
        l2 = bytearray(CLUSTER_SIZE)
        while pending is not None and pending // _ENTRIES_PER_TABLE == l1_index:
            struct.pack_into(">Q", l2, (pending % _ENTRIES_PER_TABLE) * 8, host | _COPIED)
            host += CLUSTER_SIZE
            pending = next(clusters, None)
        yield bytes(l2)


def iter_qcow2(
    raw: str | os.PathLike, size: int | None = None
) -> tuple[Qcow2Plan, Generator[bytes, None, None]]:
    """Plan the image of raw file `raw` (virtual size `size`, default: the file's length).

    Returns the plan (its `image_size` is the exact output length, handy for Content-Length) and
    a generator of the image's bytes in order, one cluster per item. The file is open only while
    the generator runs (from its first item until it is exhausted or closed).
    """
    fd = os.open(raw, os.O_RDONLY)
    try:
        if size is None:
            size = os.fstat(fd).st_size
        plan = plan_qcow2(fd, size)
    finally:
        os.close(fd)

    def chunks() -> Generator[bytes, None, None]:
        yield from _metadata(plan)
        data_fd = os.open(raw, os.O_RDONLY)
        try:
            buf = bytearray(CLUSTER_SIZE)
            for index in plan.data_clusters:
                yield bytes(_read_cluster(data_fd, index, buf))
        finally:
            os.close(data_fd)

    return plan, chunks()


def write_qcow2(raw: str | os.PathLike, out: BinaryIO | str | os.PathLike, size: int | None = None) -> int:
    """Write the QCOW2 image of raw file `raw` to a binary stream or a path; return its length."""
    plan, chunks = iter_qcow2(raw, size)
    if isinstance(out, (str, os.PathLike)):
        with open(out, "wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
    else:
        for chunk in chunks:
            out.write(chunk)
    return plan.image_size


# --- reading ---------------------------------------------------------------------------------


@dataclass
class Qcow2Header:
    version: int
    cluster_bits: int
    virtual_size: int
    l1_size: int
    l1_offset: int
    compression_type: int  # 0 zlib, 1 zstd


def _refuse(message: str) -> ImageRefused:
    return ImageRefused(message)


def parse_header(head: bytes) -> Qcow2Header:
    """Check an image's first bytes like the import does; raise ImageRefused when it would refuse."""
    if len(head) < 72 or head[:4] != MAGIC:
        raise _refuse("object is not a QCOW2 image: only QCOW2 images can be imported")
    version, = struct.unpack_from(">I", head, 4)
    if version not in (2, 3):
        raise _refuse(f"unsupported QCOW2 version {version}")
    backing_offset, backing_size, cluster_bits, size, crypt, l1_size, l1_offset = struct.unpack_from(
        ">QIIQIIQ", head, 8
    )
    if backing_offset or backing_size:
        raise _refuse("QCOW2 images with a backing file cannot be imported")
    if crypt:
        raise _refuse("encrypted QCOW2 images cannot be imported")
    if not 9 <= cluster_bits <= 21:
        raise _refuse(f"invalid QCOW2 cluster size 2^{cluster_bits}")
    if size > MAX_VIRTUAL_SIZE:
        raise _refuse(f"QCOW2 virtual size {size} is too large")
    compression_type = 0
    if version == 3:
        if len(head) < 104:
            raise _refuse("truncated QCOW2 header")
        incompatible, = struct.unpack_from(">Q", head, 72)
        header_length, = struct.unpack_from(">I", head, 100)
        if header_length > 104 and len(head) > 104:
            compression_type = head[104]
        if incompatible & 0b10:
            raise _refuse("the QCOW2 image is marked corrupt")
        if incompatible & 0b100:
            raise _refuse("QCOW2 images with an external data file cannot be imported")
        if compression_type != 0 or incompatible & 0b1000:
            raise _refuse("zstd-compressed QCOW2 images cannot be imported")
        if incompatible & ~0b1111:
            raise _refuse("the QCOW2 image uses features the import does not support")
    if l1_size * (1 << (cluster_bits - 3)) * (1 << cluster_bits) < size:
        raise _refuse("invalid QCOW2 image: L1 table too small for the virtual size")
    return Qcow2Header(version, cluster_bits, size, l1_size, l1_offset, compression_type)


def _pread(src: BinaryIO, offset: int, length: int) -> bytes:
    src.seek(offset)
    data = src.read(length)
    if len(data) < length:
        raise _refuse("invalid QCOW2 image: it is truncated")
    return data


def _inflate(data: bytes, cluster_size: int) -> bytes:
    # qemu writes raw deflate streams (no zlib header) with a 4 KiB window
    out = zlib.decompressobj(-12).decompress(data, cluster_size)
    if len(out) != cluster_size:
        raise _refuse("invalid QCOW2 image: a compressed cluster does not decompress")
    return out


def read_qcow2(src: BinaryIO | str | os.PathLike, dest: str | os.PathLike) -> int:
    """Convert a QCOW2 image (path or seekable binary stream) into sparse raw file `dest`.

    Validates like the real import (see `parse_header`; also rejects out-of-bounds tables).
    Zero and unallocated clusters stay holes. Returns the virtual size.
    """
    if isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as stream:
            return read_qcow2(stream, dest)
    head = src.read(CLUSTER_SIZE)
    header = parse_header(head)
    cluster_size = 1 << header.cluster_bits
    l2_entries = cluster_size // 8
    image_size = src.seek(0, os.SEEK_END)
    l1 = struct.unpack(f">{header.l1_size}Q", _pread(src, header.l1_offset, header.l1_size * 8))
    # Gather (host offset, guest offset, compressed length) first, to read the image in order.
    plain: list[tuple[int, int]] = []
    compressed: list[tuple[int, int, int]] = []
    sector_bits = 62 - (header.cluster_bits - 8)
    for l1_index, l1_entry in enumerate(l1):
        l2_offset = l1_entry & _OFFSET_MASK
        if not l2_offset:
            continue
        if l2_offset + cluster_size > image_size:
            raise _refuse("invalid QCOW2 image: an L2 table lies outside the file")
        l2 = struct.unpack(f">{l2_entries}Q", _pread(src, l2_offset, cluster_size))
        for l2_index, entry in enumerate(l2):
            guest = (l1_index * l2_entries + l2_index) * cluster_size
            if not entry or guest >= header.virtual_size:
                continue
            if entry & _COMPRESSED:
                offset = entry & ((1 << sector_bits) - 1)
                sectors = ((entry >> sector_bits) & ((1 << (header.cluster_bits - 8)) - 1)) + 1
                length = min(sectors * 512 - (offset & 511), image_size - offset)
                compressed.append((offset, guest, length))
            elif not entry & 1 and entry & _OFFSET_MASK:  # bit 0: reads as zeros
                host = entry & _OFFSET_MASK
                if host >= image_size:
                    raise _refuse("invalid QCOW2 image: a data cluster lies outside the file")
                plain.append((host, guest))
    dest_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(dest_fd, header.virtual_size)
        zero = bytes(cluster_size)
        for host, guest in sorted(plain):
            src.seek(host)
            data = src.read(cluster_size).ljust(cluster_size, b"\0")
            _store(dest_fd, data, guest, header.virtual_size, zero)
        for offset, guest, length in sorted(compressed):
            data = _inflate(_pread(src, offset, length), cluster_size)
            _store(dest_fd, data, guest, header.virtual_size, zero)
    except BaseException:
        os.close(dest_fd)
        Path(dest).unlink(missing_ok=True)
        raise
    os.close(dest_fd)
    return header.virtual_size


def _store(fd: int, data: bytes, guest: int, virtual_size: int, zero: bytes) -> None:
    if data != zero:
        os.pwrite(fd, memoryview(data)[: virtual_size - guest], guest)


def probe(src: BinaryIO | str | os.PathLike) -> Qcow2Header:
    """Read and check just the header (raises ImageRefused like `read_qcow2`)."""
    if isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as stream:
            return parse_header(stream.read(CLUSTER_SIZE))
    return parse_header(src.read(CLUSTER_SIZE))
