"""Decoding backends (torchcodec, PyAV, ffmpeg CLI), `auto` fallback, and the per-file pts index."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING

from .base import (
    BACKENDS,
    BackendDecodeError,
    Decoder,
    backend_available,
    ffmpeg_executable,
    pyav_available,
    torchcodec_available,
)
from .index import FileIndex, build_file_index, check_pts, clear_index_cache, file_index

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

AUTO_ORDER = ("torchcodec", "pyav", "ffmpeg")
# A byte source instead of a path (a Hub video read by range): called once per open, `True` for a reader whose
# caller loops until its buffer is full (torchcodec), `False` for one that takes short reads (PyAV)
Source = Callable[[bool], IO[bytes]]
STREAM_BACKENDS = ("torchcodec", "pyav")  # the ffmpeg CLI reads files only
_SERVED: set[tuple[str, str]] = set()
_SERVED_LOCK = threading.Lock()


def open_decoder(backend: str, path: str, index: FileIndex, *, threads: int = 1, source: Source | None = None
                 ) -> Decoder:
    """Open `path` with one backend ("torchcodec", "pyav", "ffmpeg") or with "auto" fallback; with `source`,
    the bytes come from it (`path` then only names the file) and the ffmpeg CLI is not a candidate."""
    if backend == "auto":
        order = STREAM_BACKENDS if source is not None else AUTO_ORDER
        return AutoDecoder(path, index, threads=threads, order=order, source=source)
    if backend == "torchcodec":
        from .torchcodec_backend import TorchCodecDecoder

        return TorchCodecDecoder(path, index, threads=threads, source=source)
    if backend == "pyav":
        from .pyav_backend import PyAVDecoder

        return PyAVDecoder(path, index, threads=threads, source=source)
    if source is not None:
        raise BackendDecodeError(f"the {backend} video backend reads files only, not byte streams")
    if backend == "ffmpeg":
        from .ffmpeg_backend import FFmpegCLIDecoder

        return FFmpegCLIDecoder(path, index, threads=threads)
    raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS} or 'auto'")


def _log_served(path: str, backend: str) -> None:
    key = (path, backend)
    if key in _SERVED:
        return
    with _SERVED_LOCK:
        if key in _SERVED:
            return
        _SERVED.add(key)
    logger.info("%s: decoded with %s", path, backend)


class AutoDecoder:
    """Tries torchcodec, then PyAV, then the ffmpeg CLI; sticks with the first that decodes the file."""

    def __init__(self, path: str, index: FileIndex, *, threads: int = 1, order: Sequence[str] = AUTO_ORDER,
                 source: Source | None = None) -> None:
        self.path = path
        self.index = index
        self.threads = threads
        self.source = source
        self._candidates = [b for b in order if backend_available(b)]
        if not self._candidates:
            raise BackendDecodeError("no decoding backend is usable (torchcodec, PyAV and ffmpeg all missing)")
        self._current: Decoder | None = None
        self._failures: list[str] = []

    @property
    def name(self) -> str:
        return self._current.name if self._current is not None else "auto"

    def decode(self, indices: Sequence[int]) -> torch.Tensor:
        while self._candidates:
            backend = self._candidates[0]
            try:
                if self._current is None:
                    self._current = open_decoder(backend, self.path, self.index, threads=self.threads,
                                                 source=self.source)
                out = self._current.decode(indices)
            except BackendDecodeError as exc:
                self._failures.append(f"{backend}: {exc}")
                logger.warning("%s: %s failed (%s); trying the next backend", self.path, backend, exc)
                if self._current is not None:
                    self._current.close()
                self._current = None
                self._candidates.pop(0)
                continue
            _log_served(self.path, backend)
            return out
        raise BackendDecodeError("every backend failed: " + " | ".join(self._failures))

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "AutoDecoder",
    "BackendDecodeError",
    "Decoder",
    "STREAM_BACKENDS",
    "Source",
    "FileIndex",
    "backend_available",
    "build_file_index",
    "check_pts",
    "clear_index_cache",
    "ffmpeg_executable",
    "file_index",
    "open_decoder",
    "pyav_available",
    "torchcodec_available",
]
