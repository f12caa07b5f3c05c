"""The on-disk range cache: fetched byte ranges of Hub files, keyed by (repo, commit, path, range), size-capped.

It lives in the package's own cache folder (`$LEROBOT_KEYFRAMES_CACHE/hub_ranges`, default
`~/.cache/lerobot_keyframes/hub_ranges`), never in the Hugging Face cache: huggingface_hub only ever sees
complete files it downloaded itself, so no partial file can pass for a complete one. A file's ranges live in
one folder named by the hash of (repo type, repo, commit, path) — a commit's bytes never change, so an entry
never goes stale — as `<start>-<end>-<crc32>.bin` files written atomically (temp file, rename), with `file.json`
recording the identity and size. The least recently used ranges are removed once the cache holds more than
its cap (`LEROBOT_KEYFRAMES_RANGE_CACHE_MB`, default 4096; 0 turns the cache off). Several processes may share
it: a range is written whole or not at all, carries the CRC-32 of its bytes in its name (checked on every read:
a damaged entry is deleted and fetched again, never decoded), and one that vanishes under a reader is fetched
again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
import zlib
from pathlib import Path

from .hub import HubFile
from .ranges import Range

logger = logging.getLogger(__name__)

CACHE_ENV = "LEROBOT_KEYFRAMES_CACHE"
CAP_ENV = "LEROBOT_KEYFRAMES_RANGE_CACHE_MB"
DEFAULT_CAP_MB = 4096


def cache_root() -> Path:
    """The package's cache folder: $LEROBOT_KEYFRAMES_CACHE, else $XDG_CACHE_HOME (or ~/.cache)/lerobot_keyframes."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lerobot_keyframes"


def cap_bytes() -> int:
    raw = os.environ.get(CAP_ENV)
    try:
        mb = float(raw) if raw not in (None, "") else DEFAULT_CAP_MB
    except ValueError:
        logger.warning("%s=%r is not a number; using %d MiB", CAP_ENV, raw, DEFAULT_CAP_MB)
        mb = DEFAULT_CAP_MB
    return max(0, int(mb * (1 << 20)))


class RangeCache:
    """Byte ranges of Hub files on disk (one instance per process; thread-safe)."""

    def __init__(self, root: Path | None = None, max_bytes: int | None = None) -> None:
        self.root = root if root is not None else cache_root() / "hub_ranges"
        self.max_bytes = cap_bytes() if max_bytes is None else max_bytes
        self._lock = threading.Lock()
        self._listing: dict[Path, list[tuple[int, int, int, Path]]] = {}
        self._used: int | None = None  # bytes on disk (scanned once, then kept up to date)

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def folder(self, file: HubFile) -> Path:
        key = json.dumps([file.repo_type, file.repo_id, file.commit, file.path])
        digest = hashlib.sha256(key.encode()).hexdigest()
        return self.root / digest[:2] / digest

    # -- file identity and size --------------------------------------------------------------------
    def size(self, file: HubFile) -> int | None:
        """The file's size recorded by an earlier fetch (None when this file was never cached)."""
        if not self.enabled:
            return None
        try:
            record = json.loads((self.folder(file) / "file.json").read_text())
        except (OSError, ValueError):
            return None
        return int(record["size"]) if isinstance(record, dict) and "size" in record else None

    def record(self, file: HubFile, size: int) -> None:
        if not self.enabled:
            return
        folder = self.folder(file)
        folder.mkdir(parents=True, exist_ok=True)
        payload = {"repo_type": file.repo_type, "repo_id": file.repo_id, "commit": file.commit, "path": file.path,
                   "size": size}
        _atomic_write(folder / "file.json", json.dumps(payload).encode())

    # -- ranges ---------------------------------------------------------------------------------------
    def ranges(self, file: HubFile) -> list[Range]:
        return [(a, b) for a, b, _, _ in self._entries(file)]

    def _entries(self, file: HubFile, refresh: bool = False) -> list[tuple[int, int, int, Path]]:
        folder = self.folder(file)
        with self._lock:
            listed = self._listing.get(folder)
        if listed is not None and not refresh:
            return listed
        entries = []
        if self.enabled and folder.is_dir():
            for path in folder.glob("*.bin"):
                parts = path.stem.split("-")
                if len(parts) == 3 and all(p.isdigit() for p in parts):
                    entries.append((int(parts[0]), int(parts[1]), int(parts[2]), path))
        entries.sort()
        with self._lock:
            self._listing[folder] = entries
        return entries

    def read(self, file: HubFile, wanted: Range) -> list[tuple[int, bytes]]:
        """(start, bytes) pieces of `wanted` that the cache holds (possibly none, possibly several)."""
        if not self.enabled:
            return []
        start, end = wanted
        pieces = []
        for a, b, crc, path in self._entries(file):
            if b <= start or a >= end:
                continue
            try:
                data = path.read_bytes()
                os.utime(path)  # recently used: evicted last
            except OSError:  # evicted by another process since it was listed
                self._entries(file, refresh=True)
                continue
            if len(data) != b - a or zlib.crc32(data) != crc:
                logger.warning("range cache: %s is damaged (size or CRC-32 differ); removing it", path)
                self._forget(path)
                continue
            lo, hi = max(a, start), min(b, end)
            pieces.append((lo, data[lo - a : hi - a]))
        return pieces

    def _forget(self, path: Path) -> None:
        try:
            path.unlink()
        except OSError:
            pass
        with self._lock:
            self._listing.pop(path.parent, None)

    def write(self, file: HubFile, start: int, data: bytes) -> None:
        if not self.enabled or not data or len(data) > self.max_bytes:
            return
        folder = self.folder(file)
        crc = zlib.crc32(data)
        path = folder / f"{start}-{start + len(data)}-{crc}.bin"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, data)
        except OSError as exc:  # a full or read-only disk costs speed, never the run
            logger.warning("range cache: cannot write %s (%s); going on without caching it", path, exc)
            return
        with self._lock:
            entries = self._listing.setdefault(folder, [])
            entries.append((start, start + len(data), crc, path))
            entries.sort()
            if self._used is not None:
                self._used += len(data)
        self._maybe_evict()

    # -- the cap ----------------------------------------------------------------------------------------
    def _maybe_evict(self) -> None:
        with self._lock:
            used = self._used
        if used is None:
            used = sum(p.stat().st_size for p in self._all_ranges())
            with self._lock:
                self._used = used
        if used <= self.max_bytes:
            return
        files = []
        for path in self._all_ranges():
            try:
                st = path.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, path))
        files.sort()
        used = sum(size for _, size, _ in files)
        target = int(self.max_bytes * 0.9)
        removed = 0
        for _, size, path in files:
            if used <= target:
                break
            try:
                path.unlink()
            except OSError:
                continue
            used -= size
            removed += 1
        logger.debug("range cache: removed %d least recently used ranges (now %d bytes)", removed, used)
        with self._lock:
            self._used = used
            self._listing.clear()

    def _all_ranges(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        stale = time.time() - 3600
        for tmp in self.root.glob("*/*/.*.tmp-*"):  # left by a process killed mid-write
            try:
                if tmp.stat().st_mtime < stale:
                    tmp.unlink()
            except OSError:
                pass
        return list(self.root.glob("*/*/*.bin"))


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
