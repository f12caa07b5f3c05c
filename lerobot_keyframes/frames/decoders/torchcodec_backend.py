"""torchcodec backend: one `VideoDecoder` per (thread, file), index-based batch decoding.

Uses `get_frames_at(indices)` (never `get_frames_played_at`, which picks the previous frame for
float32 dataset times a hair below a frame's pts). Opens in `seek_mode="approximate"` (no scan of the
whole file at open; our own index already has the pts table) and checks the returned pts; if a file
is not constant-frame-rate enough for that, it reopens in `"exact"` mode and retries once. Keyword
arguments are passed only when the installed torchcodec knows them (>= 0.5 has all of them; very
old releases called the class `SimpleVideoDecoder`).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import BackendDecodeError
from .index import check_pts

if TYPE_CHECKING:
    import torch

    from . import Source
    from .index import FileIndex

logger = logging.getLogger(__name__)


def _decoder_class() -> Any:
    import torchcodec.decoders as tcd

    cls = getattr(tcd, "VideoDecoder", None) or getattr(tcd, "SimpleVideoDecoder", None)
    if cls is None:
        raise BackendDecodeError("torchcodec.decoders has neither VideoDecoder nor SimpleVideoDecoder")
    return cls


@functools.cache
def _parameters(cls: Any) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return frozenset()


def _supported_kwargs(cls: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    params = _parameters(cls)  # cached: inspecting the signature costs more than opening a small video
    return {k: v for k, v in wanted.items() if k in params}


class TorchCodecDecoder:
    name = "torchcodec"

    def __init__(self, path: str, index: FileIndex, *, threads: int = 1, source: Source | None = None) -> None:
        self.path = path
        self.index = index
        self.threads = threads
        self.source = source  # a byte source (Hub ranges) instead of the path
        self._exact = False
        self._decoder = self._open(exact=False)

    def _open(self, *, exact: bool) -> Any:
        cls = _decoder_class()
        kwargs = _supported_kwargs(
            cls,
            {
                "seek_mode": "exact" if exact else "approximate",
                "num_ffmpeg_threads": self.threads,
                "dimension_order": "NCHW",
                "device": "cpu",
            },
        )
        if not exact and "seek_mode" not in kwargs:
            exact = True  # releases without seek_mode always scan: they are exact
        self._exact = exact
        stream = {"stream_index": self.index.stream_index}
        stream = _supported_kwargs(cls, stream)
        try:
            return cls(self.source(True) if self.source is not None else self.path, **stream, **kwargs)
        except Exception as exc:
            raise BackendDecodeError(f"torchcodec cannot open the video ({type(exc).__name__}: {exc})") from exc

    def decode(self, indices: Sequence[int]) -> torch.Tensor:
        indices = [int(i) for i in indices]
        try:
            return self._decode(indices)
        except BackendDecodeError:
            if self._exact or self.source is not None:  # exact mode scans the whole file: never over the network
                raise
            logger.info("%s: approximate seeking missed frames; reopening with seek_mode='exact'", self.path)
            self._decoder = self._open(exact=True)
            return self._decode(indices)

    def _decode(self, indices: list[int]) -> torch.Tensor:
        try:
            batch = self._decoder.get_frames_at(indices)
        except Exception as exc:
            raise BackendDecodeError(f"torchcodec failed to decode ({type(exc).__name__}: {exc})") from exc
        check_pts(self.index, indices, batch.pts_seconds.tolist(), self.name)
        data = batch.data
        if data.dim() != 4 or data.shape[1] != 3:
            raise BackendDecodeError(f"torchcodec returned frames of shape {tuple(data.shape)}, expected N x 3 x H x W")
        return data

    def close(self) -> None:
        self._decoder = None
