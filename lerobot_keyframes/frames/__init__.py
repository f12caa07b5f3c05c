"""Exact frames from LeRobot videos: the FrameProvider stack (decoders, cache, worker isolation).

Names are imported lazily: `frames.config` and the policies load without the decoders, pyarrow or torch.
"""

# ruff: noqa: F401 - the TYPE_CHECKING imports are re-exports for IDEs and type checkers
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {  # module -> the public names it defines
    ".blocks": "FAMILIES VisionFamily block_tokens contact_sheet_blocks contact_sheets episode_clip "
           "fit_to_token_budget image_block image_blocks text_block video_block video_tokens video_url_block "
           "vision_tokens",
    ".cache": "CacheStats FrameCache",
    ".config": "ProviderConfig VIDEO_BACKENDS VideoBackend",
    ".errors": "DecoderCrashError FrameDecodeError FrameTimeError UnknownCameraError VideoBackendUnavailableError "
           "VideoFileMissingError",
    ".policies": "KeyframeEvent KeyframePolicy at cap every_frame fps motion parse_policy uniform union",
    ".provider": "EpisodeRef FrameProvider NullProvider ProviderStats VideoFrameProvider make_frame_provider",
    ".types": "Frames",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .blocks import (
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
    from .policies import (
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
    from .provider import (
        EpisodeRef,
        FrameProvider,
        NullProvider,
        ProviderStats,
        VideoFrameProvider,
        make_frame_provider,
    )
    from .types import Frames
