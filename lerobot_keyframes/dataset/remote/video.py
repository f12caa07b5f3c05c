"""A Hub video read by byte range: its sample table, the ranges a decode needs, and a file-like for decoders.

One `RemoteVideo` per (repo, commit, path) per process, shared by every episode, camera request and thread
that reads the file: its header is read once (one range request when it comes first in the file, two when it
follows the samples, none when the range cache has it),
and the bytes fetched for one decode stay in memory for the next (LRU, byte-bounded; the disk range cache
keeps them across processes and runs). A decode goes:

1. `plan(frames)`: the samples the frames need (`ranges.needed_samples`): the byte ranges the decoder will
   read (`ranges`: FFmpeg reads through gaps shorter than its short-seek distance instead of seeking), and the
   part of them to fetch (`fetch`: the samples themselves);
2. `prefetch([(video, plan), ...])`: every missing fetch range of every file and camera of the call, fetched in
   parallel on a bounded pool (`HUB_CONNECTIONS` requests in flight per process);
3. `reader()`: a file-like over the held bytes, handed to torchcodec or PyAV. A read the plan did not cover
   is fetched on demand and counted (`unplanned_*` in the stats), so a benchmark shows whether plans are right.

Read-through gaps (`Plan.holes`: bytes inside the read ranges that hold no sample the decode needs) are never
fetched: while their plan is active the reader answers them with zeros (`skipped` in the stats). FFmpeg's demuxer
reads such a gap only to move its buffer to the next sample it was asked to seek to and discards it; the samples
a frame depends on (its sync sample through itself, in decode order, plus the decoder's reordering delay) are all
in `fetch`, so no gap byte can reach a requested frame. (Measured: fetching them made dense sampling of small
frames move 1.5x the bytes it needed; the frames are bit-identical either way, see tests/test_remote_costs.py.)
`HUB_COALESCE` lets near fetch ranges share one request when that adds little: gaps are filled, smallest first,
while the filled bytes stay within that share of the samples needed.

The reader serves exactly the bytes the decoder's demuxer asks for: FFmpeg fills its I/O buffer with as much
as the source returns, and a short read is fine for it. torchcodec's read loop keeps calling `read` until its
buffer is full, so after a short read the reader answers that loop's very next call (same position, the rest
of the same request, no seek between) with `b""`, which ends the loop without ending the stream; the
following call is FFmpeg's own and gets data again.
"""

from __future__ import annotations

import bisect
import io
import logging
import os
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import ranges as rng
from .cache import RangeCache
from .hub import HubFile, RangeFetchError, fetch_range
from .mp4 import SampleTable, UntrustedHeader, parse_moov, top_level_box
from .ranges import Range
from .stats import FileStats, clear_stats, stats_registry

logger = logging.getLogger(__name__)

HUB_CONNECTIONS = int(os.environ.get("LEROBOT_KEYFRAMES_HUB_CONNECTIONS") or 16)  # range requests in flight
MEMORY_BYTES = 512 << 20  # fetched bytes held in memory per process (beyond them: the disk range cache)
# the first request of a file: its leading boxes (ftyp, then the mdat header, or the whole moov of a file written
# with its header first, like lerobot's: ~8 bytes per sample, so 64 KiB holds the table of ~7,000 frames) and
# the first sample, which every decode reads (a file whose header follows its samples takes a second request)
HEAD_BYTES = 64 << 10
TAIL_BYTES = 4 << 20  # after mdat, the rest of a file this small is fetched in one request (the moov)
# requests saved by filling gaps between fetch ranges, smallest first: the filled bytes may reach this share of a
# plan's needed bytes, and it stops once the ranges fit the connections (docs/benchmarks.md: at 50 ms per request,
# 10 frames/s of lerobot-written 480p files took 48 s in 4,000 requests without, 27 s in 1,395 with 15 %, 1.15x the
# bytes needed)
HUB_COALESCE = float(os.environ.get("LEROBOT_KEYFRAMES_HUB_COALESCE") or 0.15)


@dataclass
class Plan:
    """The byte ranges one decode reads from one file, the part of them it fetches, and what it strictly needs."""

    ranges: list[Range]  # what the decoder reads (read-through gaps included)
    samples: np.ndarray  # decode positions of the samples strictly needed
    needed_bytes: int
    fetch: list[Range] | None = None  # the part of `ranges` fetched (None: all of it)
    pinned: list[int] = field(default_factory=list)  # chunk starts held for this plan until `release`
    holed: bool = False  # whether its holes are registered with the video (until `release`)

    def __post_init__(self) -> None:
        if self.fetch is None:
            self.fetch = list(self.ranges)

    @property
    def holes(self) -> list[Range]:
        """Read-through gaps: bytes the decoder reads but no frame needs, answered with zeros, never fetched."""
        return rng.subtract(self.ranges, self.fetch or [])

    @property
    def bytes(self) -> int:
        """Bytes this plan fetches."""
        return rng.total(self.fetch or [])


class RemoteVideo:
    """One Hub video file of this process: header, sample table, held bytes, stats (thread-safe)."""

    def __init__(self, file: HubFile, registry: _Registry) -> None:
        self.file = file
        self._registry = registry
        self.stats: FileStats = stats_registry().file(str(file))
        self._lock = threading.RLock()
        self._header_lock = threading.Lock()
        self._starts: list[int] = []
        self._chunks: dict[int, bytes] = {}
        self._used: dict[int, int] = {}  # chunk start -> last use tick
        self._pins: dict[int, int] = {}
        self._permanent: set[int] = set()  # header chunks: never evicted
        self._tick = 0
        self.size: int | None = registry.cache.size(file)
        self._table: SampleTable | None = None
        self._untrusted: str | None = None
        self.needed: set[int] = set()  # samples strictly needed by this process's plans (for the stats)
        self._errors = threading.local()  # the last fetch that failed under a decoder, per thread
        self._failed: list[tuple[Range, RangeFetchError]] = []  # failed on-demand ranges, until the next prefetch
        self._readers: weakref.WeakSet[RemoteReader] = weakref.WeakSet()  # the open decoders' positions
        self._holes: Counter[Range] = Counter()  # read-through gaps of the active plans (refcounted), see `Plan.holes`
        self._hole_spans: list[Range] = []  # the same, merged and sorted (looked up on every read)

    def __repr__(self) -> str:
        return f"RemoteVideo({self.file})"

    # -- the header ------------------------------------------------------------------------------------
    @property
    def has_header(self) -> bool:
        """Whether the header was read (or found untrusted) already."""
        return self._table is not None or self._untrusted is not None

    def sample_table(self) -> SampleTable:
        """The sample table from the file's header; `UntrustedHeader` (with the reason) when it cannot be used."""
        if self._table is not None:
            return self._table
        if self._untrusted is not None:
            raise UntrustedHeader(self._untrusted)
        with self._header_lock:
            if self._table is None and self._untrusted is None:
                try:
                    self._table = self._read_header()
                except UntrustedHeader as exc:
                    self._untrusted = str(exc)
                    raise
        if self._table is None:
            raise UntrustedHeader(self._untrusted or "unreadable header")
        return self._table

    def _read_header(self) -> SampleTable:
        first = (0, HEAD_BYTES if self.size is None else min(HEAD_BYTES, self.size))
        self.fetch([first], kind="header", permanent=True)
        if self.size is None:  # served by the range cache, filled by another process (datasets.map workers)
            self.size = self._registry.cache.size(self.file)  # which records the size before it writes a range
        if self.size is None:  # a cache entry without its record: the Hub says the size
            self._fetch_one(*first, "header")
        size = self.size
        assert size is not None
        self.stats.size = size
        offset = 0
        while offset < size:
            kind, header, box_size = top_level_box(self._read_header_bytes, offset, size)
            if kind == b"moov":
                self.fetch([(offset, offset + box_size)], kind="header", permanent=True)
                return parse_moov(self.read_held(offset, offset + box_size), size)
            if kind == b"moof":
                raise UntrustedHeader("fragmented mp4 (moof before any moov)")
            offset += box_size
        raise UntrustedHeader("no moov box in the file")

    def _read_header_bytes(self, start: int, end: int) -> bytes:
        """Box headers while walking the top level: past the first request, fetch what is left when it is
        small (it is then the moov at the end), else just the header."""
        assert self.size is not None
        if not self.holds(start, end):
            tail = self.size - start
            want = (start, self.size) if tail <= TAIL_BYTES else (start, min(self.size, start + HEAD_BYTES))
            self.fetch([want], kind="header", permanent=True)
        return self.read_held(start, end)

    # -- planning ------------------------------------------------------------------------------------------
    def plan(self, frames: Iterable[int]) -> Plan:
        """The ranges a decoder reads to output these frames (presentation indices of the sample table).

        A decoder that stopped short of a range (within FFmpeg's short-seek distance) reads through to it rather
        than seeking: that gap is part of the plan too (a hole). It stops where an open decoder's reader is, and
        at the end of any held bytes, which FFmpeg's buffer fills read on past its samples (the head request)."""
        table = self.sample_table()
        samples = rng.needed_samples(table, frames)
        # a decoder reads the first sample when it opens (FFmpeg's stream probing): every plan holds it
        read = np.union1d(samples, [0])
        fetch = rng.sample_ranges(table, read, gap=0)
        ranges = rng.merge(fetch, gap=rng.SHORT_SEEK_BYTES)
        stops = sorted({pos for pos in [*(r.pos for r in list(self._readers)), *(b for _, b in self.held())]
                        if 0 < pos < (self.size or 0)})
        extra = []
        for stop in stops:
            i = bisect.bisect_right([a for a, _ in ranges], stop)
            if i < len(ranges) and ranges[i][0] - stop <= rng.SHORT_SEEK_BYTES and not (
                    i > 0 and ranges[i - 1][1] >= stop):
                extra.append((stop, ranges[i][0]))
        if extra:
            ranges = rng.merge([*ranges, *extra])
        needed = int(table.size[samples].sum())
        fetch = rng.coalesce(fetch, int(HUB_COALESCE * needed), keep=HUB_CONNECTIONS)
        return Plan(ranges, samples, needed, fetch=fetch)

    def span_bytes(self, start_s: float, end_s: float) -> int:
        """Bytes of the samples presented in [start_s, end_s) (an episode's share of the file)."""
        table = self.sample_table()
        seconds = table.pts / table.timescale
        inside = (seconds >= start_s - 1e-6) & (seconds < end_s - 1e-6)
        return int(table.size[inside].sum())

    # -- held bytes ----------------------------------------------------------------------------------------
    def held(self) -> list[Range]:
        with self._lock:
            return [(a, a + len(self._chunks[a])) for a in self._starts]

    def holds(self, start: int, end: int) -> bool:
        return not rng.subtract([(start, end)], self.held())

    def read_held(self, start: int, end: int) -> bytes:
        out = bytearray()
        pos = start
        while pos < end:
            piece = self.read_at(pos, end - pos, fetch=False)
            if not piece:
                raise RuntimeError(f"{self.file}: bytes {pos}-{end - 1} are not held")
            out += piece
            pos += len(piece)
        return bytes(out)

    def read_at(self, pos: int, n: int, *, fetch: bool = True) -> bytes:
        """Up to n bytes from `pos`: what is held there (contiguous chunks joined), else fetched on demand."""
        with self._lock:
            data = self._held_from(pos, n)
        if data or not fetch:
            return data
        size = self.size if self.size is not None else pos + n
        with self._lock:
            i = bisect.bisect_right(self._starts, pos)
            nxt = self._starts[i] if i < len(self._starts) else size
            hole = self._hole_at(pos)
        end = min(size, pos + max(1, n), nxt)
        if end <= pos:
            return b""
        if hole is not None:  # a read-through gap of an active plan: never fetched, never reaches a frame
            end = min(end, hole)
            self.stats.add("skipped", end - pos, 0)
            return bytes(end - pos)
        for (a, b), exc in list(self._failed):  # failed already in this call: do not wait for its retries again
            if a < end and pos < b:
                self._errors.last = exc
                raise exc
        logger.debug("%s: unplanned read of bytes %d-%d", self.file, pos, end - 1)
        try:
            pinned = self.fetch([(pos, end)], kind="unplanned", pin=True)  # not evicted before it is read
        except RangeFetchError as exc:
            self._errors.last = exc
            self._failed.append(((pos, end), exc))
            raise
        try:
            with self._lock:
                return self._held_from(pos, n)
        finally:
            self._unpin(pinned)

    def _hole_at(self, pos: int) -> int | None:
        """The end of the active read-through gap holding `pos`, if any (call with the lock held)."""
        i = bisect.bisect_right(self._hole_spans, (pos, float("inf"))) - 1
        if i >= 0 and self._hole_spans[i][0] <= pos < self._hole_spans[i][1]:
            return self._hole_spans[i][1]
        return None

    def add_holes(self, plan: Plan) -> None:
        """Answer `plan`'s read-through gaps with zeros until `release(plan)`."""
        holes = plan.holes
        with self._lock:
            self._holes.update(holes)
            self._hole_spans = rng.merge(self._holes)
            plan.holed = True

    def take_error(self) -> RangeFetchError | None:
        """The fetch that failed under a decoder on this thread since the last call (and forget it)."""
        exc = getattr(self._errors, "last", None)
        self._errors.last = None
        return exc

    def _held_from(self, pos: int, n: int) -> bytes:
        i = bisect.bisect_right(self._starts, pos) - 1
        parts = []
        want = n
        while want > 0 and 0 <= i < len(self._starts):
            a = self._starts[i]
            chunk = self._chunks[a]
            if not a <= pos < a + len(chunk):
                break
            self._tick += 1
            self._used[a] = self._tick
            piece = chunk[pos - a : pos - a + want]
            parts.append(piece)
            pos += len(piece)
            want -= len(piece)
            i += 1
        return b"".join(parts)

    def _insert(self, start: int, data: bytes) -> None:
        """Hold the parts of [start, start + len(data)) not held yet."""
        with self._lock:
            for a, b in rng.subtract([(start, start + len(data))], self.held()):
                self._chunks[a] = data[a - start : b - start]
                bisect.insort(self._starts, a)
                self._tick += 1
                self._used[a] = self._tick
                self._registry.add_bytes(b - a)

    def _mark(self, wanted: Sequence[Range], *, permanent: bool, pin: bool) -> list[int]:
        """Mark the chunks covering `wanted` (header: never evicted; pinned: not until `release`)."""
        covering = []
        with self._lock:
            for start, end in wanted:
                i = max(0, bisect.bisect_right(self._starts, start) - 1)
                while i < len(self._starts) and self._starts[i] < end:
                    a = self._starts[i]
                    if a + len(self._chunks[a]) > start:
                        covering.append(a)
                        if permanent:
                            self._permanent.add(a)
                        if pin:
                            self._pins[a] = self._pins.get(a, 0) + 1
                    i += 1
        return covering

    def release(self, plan: Plan) -> None:
        """The decode of `plan` is done: its chunks may be evicted again."""
        pinned, plan.pinned = plan.pinned, []
        if plan.holed:
            plan.holed = False
            holes = Counter(plan.holes)
            with self._lock:
                self._holes -= holes  # a gap another active plan still reads through stays
                self._hole_spans = rng.merge(self._holes)
        self._unpin(pinned)

    def _unpin(self, starts: Sequence[int]) -> None:
        with self._lock:
            for a in starts:
                left = self._pins.get(a, 0) - 1
                if left > 0:
                    self._pins[a] = left
                else:
                    self._pins.pop(a, None)
        self._registry.trim()

    def evict(self, goal: int) -> int:
        """Drop least recently used, unpinned, non-header chunks until `goal` bytes are freed; returns bytes freed."""
        freed = 0
        with self._lock:
            candidates = sorted((self._used.get(a, 0), a) for a in self._starts
                                if a not in self._permanent and a not in self._pins)
            for _, a in candidates:
                if freed >= goal:
                    break
                freed += len(self._chunks.pop(a))
                self._starts.remove(a)
                self._used.pop(a, None)
        return freed

    @property
    def last_used(self) -> int:
        return max(self._used.values(), default=0)

    # -- fetching ---------------------------------------------------------------------------------------
    def fetch(self, wanted: Sequence[Range], *, kind: str, permanent: bool = False, pin: bool = False) -> list[int]:
        """Make `wanted` held: from memory, else the disk range cache, else the Hub (counted as `kind`)."""
        missing = rng.subtract(wanted, self.held())
        cache = self._registry.cache
        for a, b in missing:
            for start, data in cache.read(self.file, (a, b)):
                self._insert(start, data)
                self.stats.add("cache", len(data), 0)
        for a, b in rng.subtract(missing, self.held()):  # one request each (`prefetch` runs plans in parallel)
            self._fetch_one(a, b, kind)
        covering = self._mark(wanted, permanent=permanent, pin=pin) if permanent or pin else []
        self._registry.trim()
        return covering

    def _fetch_one(self, start: int, end: int, kind: str) -> None:
        try:
            data, size = fetch_range(self.file, start, end, may_end_early=self.size is None)
        except RangeFetchError:
            self.stats.add("failed", 0, 1)
            raise
        if self.size is None:
            if size < 0:
                raise RangeFetchError("the Hub did not say the file's size (Content-Range */*)", file=str(self.file))
            self.size = size
            self._registry.cache.record(self.file, size)
            self.stats.size = size
        self.stats.add(kind, len(data), 1)
        self._insert(start, data)
        self._registry.cache.write(self.file, start, data)

    def count_needed(self, plan: Plan) -> None:
        table = self.sample_table()
        with self._lock:
            new = [int(s) for s in plan.samples if int(s) not in self.needed]
            self.needed.update(new)
        self.stats.add("needed", int(table.size[new].sum()) if new else 0, 0)

    # -- the decoders' view -----------------------------------------------------------------------------
    def reader(self, *, loop_reads: bool) -> RemoteReader:
        """A file-like for one decoder (`loop_reads=True` for torchcodec, whose read loop fills its whole buffer)."""
        self.sample_table()  # the size and header are known before any decoder opens
        reader = RemoteReader(self, loop_reads=loop_reads)
        self._readers.add(reader)
        return reader


class RemoteReader(io.RawIOBase):
    """A seekable binary file over a `RemoteVideo`'s bytes, one per decoder (it has its own position)."""

    def __init__(self, video: RemoteVideo, *, loop_reads: bool) -> None:
        super().__init__()
        self.video = video
        self.loop_reads = loop_reads
        self.size = int(video.size or 0)
        self.pos = 0
        self.error: RangeFetchError | None = None  # the fetch that failed under the decoder, if any
        self._continuation: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return str(self.video.file)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self.pos = int(offset)
        elif whence == io.SEEK_CUR:
            self.pos += int(offset)
        elif whence == io.SEEK_END:
            self.pos = self.size + int(offset)
        else:
            raise OSError(f"unsupported whence {whence}")
        self._continuation = None
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        if n == 0 or self.pos >= self.size:
            return b""
        if self._continuation == (self.pos, n):  # the rest of the request a short read just answered
            self._continuation = None
            return b""
        try:
            data = self.video.read_at(self.pos, min(n, self.size - self.pos))
        except RangeFetchError as exc:
            self.error = exc
            raise
        self.pos += len(data)
        self._continuation = (self.pos, n - len(data)) if self.loop_reads and len(data) < n else None
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Registry:
    """This process's remote videos, range cache, fetch pool and memory budget (rebuilt after fork)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cache = RangeCache()
        self.videos: dict[HubFile, RemoteVideo] = {}
        self.downloaded: dict[HubFile, str] = {}  # files fetched whole: their path in the Hugging Face cache
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._bytes = 0

    def video(self, file: HubFile) -> RemoteVideo:
        with self._lock:
            found = self.videos.get(file)
            if found is None:
                found = self.videos[file] = RemoteVideo(file, self)
            return found

    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(HUB_CONNECTIONS, thread_name_prefix="hub-ranges")
            return self._pool

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self._bytes += n

    def trim(self) -> None:
        with self._lock:
            over = self._bytes - MEMORY_BYTES
            videos = sorted(self.videos.values(), key=lambda v: v.last_used)
        for video in videos:
            if over <= 0:
                break
            freed = video.evict(over)
            over -= freed
            self.add_bytes(-freed)


_REGISTRY: _Registry | None = None
_REGISTRY_LOCK = threading.Lock()


def registry() -> _Registry:
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None or _REGISTRY.pid != os.getpid():
            _REGISTRY = _Registry()
        return _REGISTRY


def remote_video(file: HubFile) -> RemoteVideo:
    """This process's `RemoteVideo` of a Hub file (made on first use)."""
    return registry().video(file)


def prefetch(items: Sequence[tuple[RemoteVideo, Plan]]) -> list[RangeFetchError | None]:
    """Fetch every plan's missing ranges, all files at once on the bounded pool; the ranges of each plan
    stay held until its `release`. One entry per item: None, or the error that failed that plan."""
    pool = registry().pool()
    jobs: dict[tuple[HubFile, Range], Future] = {}
    needs: list[list[tuple[HubFile, Range]]] = []
    for video, _ in items:
        video._failed.clear()
    for video, plan in items:
        keys = []
        for r in rng.subtract(plan.fetch or [], video.held()):
            key = (video.file, r)
            if key not in jobs:  # pinned until every plan holds its own pins (never evicted in between)
                jobs[key] = pool.submit(video.fetch, [r], kind="planned", pin=True)
            keys.append(key)
        needs.append(keys)
    errors: list[RangeFetchError | None] = []
    for (video, plan), keys in zip(items, needs):
        error = None
        for key in keys:
            exc = jobs[key].exception()
            if exc is not None and error is None:
                error = exc if isinstance(exc, RangeFetchError) else RangeFetchError(
                    f"{type(exc).__name__}: {exc}", file=str(video.file), start=key[1][0], end=key[1][1])
        if error is None:
            try:  # pin what the plan needs (also what was held already) until the decode is done
                plan.pinned = video.fetch(plan.fetch or [], kind="planned", pin=True)
                video.add_holes(plan)
                video.count_needed(plan)
            except RangeFetchError as exc:
                error = exc
        errors.append(error)
    videos = {v.file: v for v, _ in items}
    for (file, _), job in jobs.items():
        if job.exception() is None:
            videos[file]._unpin(job.result())
    return errors


def clear() -> None:
    """Forget this process's remote videos, held bytes and stats (the disk range cache stays): what a new
    process starts with."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        _REGISTRY = None
    clear_stats()

