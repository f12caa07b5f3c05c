"""The per-thread decoder store: one thread's open decoders, LRU-bounded.

Never shared between threads or processes (principle 3: no lock on the decode path); a store made before a
fork is replaced in the child (`pid` check by its owner).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class DecoderStore:
    """Open decoders (or image sources) of one thread, keyed by e.g. ("video", file, video_backend)."""

    def __init__(self, max_open: int) -> None:
        self.pid = os.getpid()
        self.max_open = max_open
        self._open: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, factory: Callable[[], Any]) -> Any:
        """The open decoder of `key`, made by `factory` when missing; the least recently used beyond
        `max_open` are closed."""
        dec = self._open.pop(key, None)
        if dec is None:
            dec = factory()
        self._open[key] = dec
        while len(self._open) > self.max_open:
            _, old = self._open.popitem(last=False)
            _close_quietly(old)
        return dec

    def drop(self, key: Hashable) -> None:
        dec = self._open.pop(key, None)
        if dec is not None:
            _close_quietly(dec)

    def __len__(self) -> int:
        return len(self._open)

    def close(self) -> None:
        for key in list(self._open):
            self.drop(key)


def _close_quietly(decoder: Any) -> None:
    try:
        decoder.close()
    except Exception:  # a decoder that fails to close must not fail the frames already decoded
        pass
