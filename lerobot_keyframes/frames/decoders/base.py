"""What every decoding backend implements, and which backends this machine has."""

from __future__ import annotations

import functools
import logging
import shutil
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

BACKENDS = ("torchcodec", "pyav", "ffmpeg")


class BackendDecodeError(RuntimeError):
    """A backend failed on a file. The provider re-raises it as a FrameDecodeError with full context."""


class Decoder(Protocol):
    """One open video file, used by one thread at a time.

    `decode(indices)` takes sorted, unique frame indices into the file's `FileIndex` and returns a
    uint8 tensor N x 3 x H x W (RGB) with exactly those frames, in that order, or raises
    BackendDecodeError. Implementations check the pts of what they decoded against the index.
    """

    name: str
    path: str

    def decode(self, indices: Sequence[int]) -> torch.Tensor: ...

    def close(self) -> None: ...


@functools.cache
def torchcodec_available() -> bool:
    """True when `torchcodec.decoders` really loads (it needs FFmpeg shared libraries and a matching torch)."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception as exc:  # ImportError, OSError/RuntimeError from missing libav* or CUDA libs
        logger.info("torchcodec is not usable here (%s: %s)", type(exc).__name__, str(exc).splitlines()[0][:200])
        return False
    return True


@functools.cache
def pyav_available() -> bool:
    try:
        import av  # noqa: F401
    except Exception as exc:
        logger.info("PyAV is not usable here (%s: %s)", type(exc).__name__, exc)
        return False
    return True


@functools.cache
def ffmpeg_executable() -> str | None:
    return shutil.which("ffmpeg")


def backend_available(name: str) -> bool:
    if name == "torchcodec":
        return torchcodec_available()
    if name == "pyav":
        return pyav_available()
    if name == "ffmpeg":
        return ffmpeg_executable() is not None
    raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS} or 'auto'")
