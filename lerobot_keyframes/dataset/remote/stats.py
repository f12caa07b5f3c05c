"""What reading videos from the Hub cost this process: bytes and requests per file, by kind.

Kinds: `header` (the boxes and sample table), `planned` (ranges a decode plan asked for), `unplanned` (reads a
decoder made outside its plan, fetched on demand: a plan that was right has none), `cache` (bytes served by the
disk range cache, no request), `download` (files fetched whole: `auto` chose to, or their header could not be
trusted), `failed` (requests that failed after retries), `needed` (bytes of the samples the plans strictly
needed, each sample counted once: the floor a benchmark compares the bytes moved with), `skipped` (read-through
gaps a decoder read and was answered with zeros: bytes never fetched, see `video.Plan.holes`).

`remote_stats()` is a snapshot a benchmark can read (per process: a `datasets.map` worker has its own), and
`summary()` the one line a run logs.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass, field

KINDS = ("header", "planned", "unplanned", "cache", "download", "failed", "needed", "skipped")
MOVED = ("header", "planned", "unplanned", "download")  # the kinds that moved bytes over the network


@dataclass
class FileStats:
    """Bytes and requests of one Hub file (by kind), its size and how it was read ("stream" or "download")."""

    file: str
    size: int | None = None
    mode: str = "stream"
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    @property
    def moved_bytes(self) -> int:
        return sum(self.bytes[k] for k in MOVED)

    @property
    def moved_requests(self) -> int:
        return sum(self.requests[k] for k in MOVED)

    def add(self, kind: str, nbytes: int, requests: int) -> None:
        with _LOCK:
            self.bytes[kind] += int(nbytes)
            self.requests[kind] += int(requests)


@dataclass
class RemoteStats:
    """Every Hub file this process read by range or downloaded for a streamed run."""

    files: dict[str, FileStats] = field(default_factory=dict)

    def total(self, kind: str) -> int:
        return sum(f.bytes[kind] for f in self.files.values())

    def requests(self, kind: str) -> int:
        return sum(f.requests[kind] for f in self.files.values())

    @property
    def moved_bytes(self) -> int:
        return sum(f.moved_bytes for f in self.files.values())

    @property
    def moved_requests(self) -> int:
        return sum(f.moved_requests for f in self.files.values())

    def summary(self) -> str:
        """One line: files, bytes moved and requests, share of the files, unplanned reads, cache, downloads."""
        if not self.files:
            return "hub videos: nothing read"
        sizes = [f.size for f in self.files.values() if f.size]
        share = f" ({100 * self.moved_bytes / sum(sizes):.1f}% of {_mb(sum(sizes))})" if sizes else ""
        streamed = sum(1 for f in self.files.values() if f.mode == "stream")
        parts = [f"hub videos: {len(self.files)} files ({streamed} streamed), {_mb(self.moved_bytes)} moved in "
                 f"{self.moved_requests} requests{share}",
                 f"samples needed {_mb(self.total('needed'))}",
                 f"unplanned {_mb(self.total('unplanned'))} in {self.requests('unplanned')} requests",
                 f"from the range cache {_mb(self.total('cache'))}"]
        if self.total("skipped"):
            parts.append(f"read through without fetching {_mb(self.total('skipped'))}")
        if self.total("download"):
            parts.append(f"downloaded whole {_mb(self.total('download'))}")
        if self.requests("failed"):
            parts.append(f"failed requests {self.requests('failed')}")
        return ", ".join(parts)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


class _Stats:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.files: dict[str, FileStats] = {}

    def file(self, name: str) -> FileStats:
        with _LOCK:
            found = self.files.get(name)
            if found is None:
                found = self.files[name] = FileStats(name)
            return found


_LOCK = threading.Lock()
_STATS: _Stats | None = None


def stats_registry() -> _Stats:
    global _STATS
    with _LOCK:
        if _STATS is None or _STATS.pid != os.getpid():
            _STATS = _Stats()
        return _STATS


def remote_stats() -> RemoteStats:
    """A snapshot of this process's Hub video reads."""
    reg = stats_registry()
    with _LOCK:
        files = {name: dataclasses.replace(f, bytes=dict(f.bytes), requests=dict(f.requests))
                 for name, f in reg.files.items()}
    return RemoteStats(files)


def reset_remote_stats() -> None:
    """Start counting from zero (the files' held bytes and the range cache stay)."""
    reg = stats_registry()
    with _LOCK:
        for f in reg.files.values():
            f.bytes = dict.fromkeys(KINDS, 0)
            f.requests = dict.fromkeys(KINDS, 0)


def clear_stats() -> None:
    """Forget every file this process counted."""
    global _STATS
    with _LOCK:
        _STATS = None
