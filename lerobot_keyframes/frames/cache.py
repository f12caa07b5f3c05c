"""A thread-safe LRU cache of decoded frames, bounded in bytes.

The lock guards dictionary bookkeeping only (microseconds); decoding never happens under it. Values are
uint8 frame tensors that own their memory (never views into a larger decoded batch).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    max_bytes: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class FrameCache:
    """LRU of frames keyed by e.g. (file, episode, camera, pts); `max_bytes=0` disables it."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache size must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> torch.Tensor | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self._misses += 1
                return None
            self._data.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: Hashable, frame: torch.Tensor) -> None:
        import torch

        size = frame.numel() * frame.element_size()
        if self.max_bytes == 0 or size > self.max_bytes:
            return
        if not frame.is_contiguous() or frame.storage_offset() or frame.untyped_storage().nbytes() != size:
            frame = frame.clone(memory_format=torch.contiguous_format)
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old.numel() * old.element_size()
            self._data[key] = frame
            self._bytes += size
            while self._bytes > self.max_bytes and self._data:
                _, evicted = self._data.popitem(last=False)
                self._bytes -= evicted.numel() * evicted.element_size()
                self._evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions, len(self._data), self._bytes, self.max_bytes)

    def reset_stats(self) -> None:
        with self._lock:
            self._hits = self._misses = self._evictions = 0
