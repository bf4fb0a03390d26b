"""Parallel, bounded read-ahead of the blobs a restore needs, in pack order.

A window of the image (one chunk list: up to 65536 chunks) is planned as *runs*: neighbouring
blobs of one pack read with one request. A few threads fetch the runs in parallel; each
decodes (authenticates, decompresses, checks against its id) the blobs of its run one by one
and hands every plain blob, with the image offsets where it goes, to a sink (the restorer
writes it there at once). What one thread holds at a time is bounded:

- a local store: one run, read with ``pread`` into the thread's reused buffer (runs of at
  most RUN_MAX_LOCAL: small runs spread a window over every thread);
- S3 (a backend with ``open_range``): one ranged GET per run, runs as long as the pack (one
  GET per pack and window: fewer, larger requests), whose body is read in blocks of 1 MiB
  and decoded blob by blob, so a thread holds a block and a blob, not the run. A run that
  spans the pack's blobs from first to last asks for the whole pack (an open-ended range
  from 0): the pack's head and trailer are a fraction of a percent more bytes, and a server
  that cuts a range out of the whole object (moto, the sandbox's S3, copies the 32 MiB
  pack for every partial range: 0.8 instead of 0.5 CPU-s for a 1.2 GiB restore on this
  machine's two shared cores) sends the object as it is;
- any other backend: one run, ``get`` whole (runs of at most RUN_MAX).

so memory does not grow with the image or the pack size: threads × (a run, or a block and a
blob).
"""
from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate
from typing import BinaryIO

from engine.errors import OperationError
from engine.store.backends.base import NotFound
from engine.store.crypto import IntegrityError
from engine.store.index import Location
from engine.store.pack import BLOB_DATA, pack_name
from engine.store.repository import BlobReader, Cancelled
from engine.store.snapshot import ZERO_ID

RUN_GAP = 256 * 1024            # read across gaps this small rather than start a new request
RUN_MAX = 8 * 1024 * 1024       # runs read whole into memory (backends without open_range)
RUN_MAX_LOCAL = 1024 * 1024     # local files: pread, so small runs cost nothing extra
RUN_MAX_STREAM = 1 << 40        # streamed runs: a whole pack's needed span in one GET
# Local reads are CPU work (decode, then a page-cache write under the file's inode lock): one
# thread a core, at most 4. On 2 cores, 2 threads restored bench v1 in 0.91 s and 4 in 0.94 s
# (median of four, in process), the extra threads only contending for that lock.
THREADS = min(4, max(2, os.cpu_count() or 2))
THREADS_STREAM = 6              # S3: requests wait on the network (and, here, on moto)
STREAM_BLOCK = 1024 * 1024      # a streamed run is read in blocks of this size

# (plain bytes, image offsets where they go)
Sink = Callable[[bytes, list[int]], None]


@dataclass
class Run:
    """Blobs of one pack read with one request, in pack order: (location, id, offsets)."""

    pack: str
    start: int
    end: int
    blobs: list[tuple[Location, bytes, list[int]]] = field(default_factory=list)
    whole: bool = False     # spans the pack's blobs from first to last: stream the whole pack

    @property
    def raw_bytes(self) -> int:
        return sum(loc.raw_len * len(offsets) for loc, _cid, offsets in self.blobs)


@dataclass
class FetchStats:
    """What the read-ahead held at most at once (for tests and benches)."""

    peak_bytes: int = 0     # largest sum of the bytes all threads held at one time
    runs: int = 0
    requests: int = 0
    _held: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_run(self) -> None:
        with self._lock:
            self.runs += 1

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def hold(self, n: int) -> None:
        with self._lock:
            self._held += n
            self.peak_bytes = max(self.peak_bytes, self._held)

    def release(self, n: int) -> None:
        with self._lock:
            self._held -= n


def plan(reader: BlobReader, ids: list[bytes], lengths: list[int], base: int,
         run_max: int | None = None) -> list[Run]:
    """The runs that bring every non-zero chunk of ``ids`` (image offsets from ``base``);
    a chunk that occurs several times is fetched once and goes to all its offsets. A run
    spans at most ``run_max`` bytes (default: what suits the reader's backend)."""
    wanted: dict[bytes, list[int]] = {}
    for cid, offset in zip(ids, accumulate(lengths, initial=base)):  # one pass: ~16k a window
        if cid != ZERO_ID:
            offsets = wanted.get(cid)
            if offsets is None:
                wanted[cid] = [offset]
            else:
                offsets.append(offset)
    where = reader.cache.lookup_many(wanted, BLOB_DATA)
    by_pack: dict[str, list[tuple[Location, bytes, list[int]]]] = {}
    for cid, offsets in wanted.items():
        loc = where.get(cid) or reader.locate(cid, BLOB_DATA)  # locate raises "missing"
        blobs = by_pack.get(loc.pack)
        if blobs is None:
            by_pack[loc.pack] = [(loc, cid, offsets)]
        else:
            blobs.append((loc, cid, offsets))
    run_max = run_max or _run_max(reader)
    runs: list[Run] = []
    for pack, blobs in by_pack.items():
        blobs.sort(key=_pack_offset)
        run: Run | None = None
        for blob in blobs:
            loc = blob[0]
            start, end = loc.offset, loc.offset + loc.stored_len
            if run is None or start - run.end > RUN_GAP or end - run.start > run_max:
                run = Run(pack, start, end)
                runs.append(run)
            elif end > run.end:
                run.end = end
            run.blobs.append(blob)
    if _streams(reader):
        ends = reader.cache.data_ends(by_pack)
        for run in runs:
            run.whole = run.start <= RUN_GAP and ends.get(run.pack, 0) - run.end <= RUN_GAP
    return runs


def _pack_offset(blob: tuple[Location, bytes, list[int]]) -> int:
    return blob[0].offset


def _streams(reader: BlobReader) -> bool:
    return not reader.local and hasattr(reader.backend, "open_range")


def _run_max(reader: BlobReader) -> int:
    if reader.local:
        return RUN_MAX_LOCAL
    return RUN_MAX_STREAM if _streams(reader) else RUN_MAX


def threads_for(reader: BlobReader) -> int:
    return THREADS if reader.local else THREADS_STREAM


def fetch_runs(reader: BlobReader, runs: list[Run], pool: ThreadPoolExecutor, sink: Sink,
               stats: FetchStats, cancel: threading.Event | None,
               tick: Callable[[Run], None], ahead: int) -> None:
    """Fetch and decode every run in ``pool``, each blob handed to ``sink`` (from the pool's
    threads); ``tick(run)`` is called in this thread as each run completes. At most ``ahead``
    runs (two per thread: the next ones queued) are submitted at a time, and completions come back through
    one queue (waiting on every pending future at each step was quadratic in the runs). The
    first failure is raised once the runs under way have stopped: none is started after it."""
    done: queue.SimpleQueue[tuple[Future, Run]] = queue.SimpleQueue()
    todo = iter(runs)
    inflight = 0

    def submit() -> bool:
        run = next(todo, None)
        if run is None:
            return False
        fut = pool.submit(_fetch_run, reader, run, sink, stats, cancel)
        fut.add_done_callback(lambda f, run=run: done.put((f, run)))
        return True

    try:
        while inflight < ahead and submit():
            inflight += 1
        while inflight:
            fut, run = done.get()
            inflight -= 1
            fut.result()
            tick(run)
            if submit():
                inflight += 1
    except BaseException:
        while inflight:  # no thread may go on writing once the caller cleans up
            done.get()
            inflight -= 1
        raise


def _fetch_run(reader: BlobReader, run: Run, sink: Sink, stats: FetchStats,
               cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("restore cancelled")
    stats.count_run()
    try:
        if _streams(reader):
            _stream_run(reader, run, sink, stats)
        else:
            _read_run(reader, run, sink, stats)
    except NotFound:  # moved by a prune since the plan: one blob at a time, found anew
        for _loc, cid, offsets in run.blobs:
            sink(reader.read_blob(cid, BLOB_DATA), offsets)


def _read_run(reader: BlobReader, run: Run, sink: Sink, stats: FetchStats) -> None:
    length = run.end - run.start
    try:
        data = reader.fetch(run.pack, run.start, length)
    except NotFound:
        raise
    except OperationError:
        raise IntegrityError(f"pack {run.pack} is truncated") from None
    stats.count_request()
    stats.hold(length)
    try:
        for loc, cid, offsets in run.blobs:
            rel = loc.offset - run.start
            sink(reader.decode(data[rel:rel + loc.stored_len], loc, cid, BLOB_DATA), offsets)
    finally:
        stats.release(length)


def _stream_run(reader: BlobReader, run: Run, sink: Sink, stats: FetchStats) -> None:
    start = 0 if run.whole else run.start
    body = reader.backend.open_range(pack_name(run.pack), start,  # type: ignore[attr-defined]
                                     None if run.whole else run.end - start)
    stats.count_request()
    blocks = _Blocks(body, run.pack, stats)
    try:
        pos = start
        for loc, cid, offsets in run.blobs:
            if loc.offset < pos:  # two blobs overlap: never in a sound pack
                raise IntegrityError(f"pack {run.pack} lists overlapping blobs")
            blocks.skip(loc.offset - pos)
            sealed = blocks.take(loc.stored_len)
            reader.fetched += loc.stored_len
            plain = reader.decode(sealed, loc, cid, BLOB_DATA)
            del sealed
            sink(plain, offsets)
            pos = loc.offset + loc.stored_len
        if run.whole:
            blocks.drain()  # the trailer, so that the connection can serve the next GET
    finally:
        blocks.close()
        body.close()


class _Blocks:
    """A streamed body read in blocks of STREAM_BLOCK (one read call per block, not per blob:
    each read through botocore and urllib3 costs tens of microseconds of Python), handed out
    blob by blob. Holds at most a block plus one blob."""

    def __init__(self, body: BinaryIO, pack: str, stats: FetchStats):
        self.body, self.pack, self.stats = body, pack, stats
        self.buf: bytes = b""
        self.pos = 0

    def _fill(self, n: int) -> None:
        """Make ``n`` bytes available from ``pos``."""
        have = len(self.buf) - self.pos
        if have >= n:
            return
        parts = [self.buf[self.pos:]] if have else []
        while have < n:
            more = self.body.read(max(n - have, STREAM_BLOCK))
            if not more:
                raise IntegrityError(f"pack {self.pack} is truncated")
            parts.append(more)
            have += len(more)
        old = len(self.buf)
        self.buf = parts[0] if len(parts) == 1 else b"".join(parts)
        self.pos = 0
        self.stats.hold(len(self.buf) - old)

    def take(self, n: int) -> memoryview:
        self._fill(n)
        view = memoryview(self.buf)[self.pos:self.pos + n]
        self.pos += n
        return view

    def skip(self, n: int) -> None:
        while n:
            step = min(n, STREAM_BLOCK)
            self._fill(step)
            self.pos += step
            n -= step

    def drain(self) -> None:
        """Read the body to its end, keeping nothing."""
        self.stats.release(len(self.buf))
        self.buf, self.pos = b"", 0
        while self.body.read(STREAM_BLOCK):
            pass

    def close(self) -> None:
        self.stats.release(len(self.buf))
        self.buf = b""
