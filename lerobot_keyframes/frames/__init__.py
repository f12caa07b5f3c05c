"""Exact frames from LeRobot videos: the FrameProvider stack (decoders, cache, worker isolation)."""

from __future__ import annotations

from .cache import CacheStats, FrameCache
from .errors import (
    BackendUnavailableError,
    DecoderCrashError,
    FrameDecodeError,
    FrameTimeError,
    UnknownCameraError,
    VideoFileMissingError,
)
from .provider import FrameProvider, NullProvider, ProviderConfig, VideoFrameProvider, make_frame_provider
from .types import Frames

__all__ = [
    "BackendUnavailableError",
    "CacheStats",
    "DecoderCrashError",
    "FrameCache",
    "FrameDecodeError",
    "FrameProvider",
    "FrameTimeError",
    "Frames",
    "NullProvider",
    "ProviderConfig",
    "UnknownCameraError",
    "VideoFileMissingError",
    "VideoFrameProvider",
    "make_frame_provider",
]
