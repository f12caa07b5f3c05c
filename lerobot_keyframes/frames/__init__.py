"""Exact frames from LeRobot videos: the FrameProvider stack (decoders, cache, worker isolation)."""

from __future__ import annotations

from .cache import CacheStats, FrameCache
from .config import VIDEO_BACKENDS, ProviderConfig, VideoBackend
from .errors import (
    DecoderCrashError,
    FrameDecodeError,
    FrameTimeError,
    UnknownCameraError,
    VideoBackendUnavailableError,
    VideoFileMissingError,
)
from .provider import (
    EpisodeRef,
    FrameProvider,
    NullProvider,
    ProviderStats,
    VideoFrameProvider,
    make_frame_provider,
)
from .types import Frames

__all__ = [
    "VIDEO_BACKENDS",
    "CacheStats",
    "DecoderCrashError",
    "EpisodeRef",
    "FrameCache",
    "FrameDecodeError",
    "FrameProvider",
    "FrameTimeError",
    "Frames",
    "NullProvider",
    "ProviderConfig",
    "ProviderStats",
    "UnknownCameraError",
    "VideoBackend",
    "VideoBackendUnavailableError",
    "VideoFileMissingError",
    "VideoFrameProvider",
    "make_frame_provider",
]

# Keyframe policies and Qwen-VL content blocks (cheap imports: numpy only; PIL/av load when used).
from .blocks import (  # noqa: E402
    FAMILIES,
    VisionFamily,
    block_tokens,
    contact_sheet_blocks,
    contact_sheets,
    episode_clip,
    fit_to_token_budget,
    image_block,
    image_blocks,
    text_block,
    video_block,
    video_tokens,
    video_url_block,
    vision_tokens,
)
from .policies import (  # noqa: E402
    KeyframeEvent,
    KeyframePolicy,
    at,
    cap,
    every_frame,
    fps,
    motion,
    parse_policy,
    uniform,
    union,
)

__all__ += [
    "FAMILIES",
    "KeyframeEvent",
    "KeyframePolicy",
    "VisionFamily",
    "at",
    "block_tokens",
    "cap",
    "contact_sheet_blocks",
    "contact_sheets",
    "episode_clip",
    "every_frame",
    "fit_to_token_budget",
    "fps",
    "image_block",
    "image_blocks",
    "motion",
    "parse_policy",
    "text_block",
    "uniform",
    "union",
    "video_block",
    "video_tokens",
    "video_url_block",
    "vision_tokens",
]
