"""Exact frames from LeRobot videos: the FrameProvider stack (decoders, cache, worker isolation).

Names are imported lazily: `frames.config` and the policies load without the decoders, pyarrow or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {
    "FAMILIES": ".blocks",
    "VisionFamily": ".blocks",
    "block_tokens": ".blocks",
    "contact_sheet_blocks": ".blocks",
    "contact_sheets": ".blocks",
    "episode_clip": ".blocks",
    "fit_to_token_budget": ".blocks",
    "image_block": ".blocks",
    "image_blocks": ".blocks",
    "text_block": ".blocks",
    "video_block": ".blocks",
    "video_tokens": ".blocks",
    "video_url_block": ".blocks",
    "vision_tokens": ".blocks",
    "CacheStats": ".cache",
    "FrameCache": ".cache",
    "ProviderConfig": ".config",
    "VIDEO_BACKENDS": ".config",
    "VideoBackend": ".config",
    "DecoderCrashError": ".errors",
    "FrameDecodeError": ".errors",
    "FrameTimeError": ".errors",
    "UnknownCameraError": ".errors",
    "VideoBackendUnavailableError": ".errors",
    "VideoFileMissingError": ".errors",
    "KeyframeEvent": ".policies",
    "KeyframePolicy": ".policies",
    "at": ".policies",
    "cap": ".policies",
    "every_frame": ".policies",
    "fps": ".policies",
    "motion": ".policies",
    "parse_policy": ".policies",
    "uniform": ".policies",
    "union": ".policies",
    "EpisodeRef": ".provider",
    "FrameProvider": ".provider",
    "NullProvider": ".provider",
    "ProviderStats": ".provider",
    "VideoFrameProvider": ".provider",
    "make_frame_provider": ".provider",
    "Frames": ".types",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .blocks import (  # noqa: F401  # noqa: F401  # noqa: F401
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
    from .cache import CacheStats, FrameCache  # noqa: F401
    from .config import VIDEO_BACKENDS, ProviderConfig, VideoBackend  # noqa: F401
    from .errors import (  # noqa: F401  # noqa: F401
        DecoderCrashError,
        FrameDecodeError,
        FrameTimeError,
        UnknownCameraError,
        VideoBackendUnavailableError,
        VideoFileMissingError,
    )
    from .policies import (  # noqa: F401  # noqa: F401
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
    from .provider import (  # noqa: F401
        EpisodeRef,
        FrameProvider,
        NullProvider,
        ProviderStats,
        VideoFrameProvider,
        make_frame_provider,  # noqa: F401
    )
    from .types import Frames  # noqa: F401
