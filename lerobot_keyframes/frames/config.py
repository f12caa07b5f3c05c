"""`ProviderConfig`: everything that shapes a frame provider's output or behaviour (and its fingerprint).

The video decoder is the `video_backend` (lerobot's own word: `LeRobotDataset(video_backend=...)`,
lerobot-annotate's `--video_backend`); "backend" alone means the VLM elsewhere in the package. Sizes a
user sets are in MiB (`cache_mb`, like `--frame_cache_mb`); the cache counts bytes inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..dataset.remote import DEFAULT_VIDEO_ACCESS, VideoAccess, check_video_access
from .decoders.base import backend_available
from .errors import VideoBackendUnavailableError

VideoBackend = Literal["auto", "torchcodec", "pyav", "ffmpeg"]
VIDEO_BACKENDS: tuple[str, ...] = get_args(VideoBackend)
OnError = Literal["raise", "none"]
ON_ERROR: tuple[str, ...] = get_args(OnError)

# Off by default: most callers (datasets.map, review, benchmarks) ask for each frame once, and a cache
# would copy every decoded frame for nothing (a quarter of the cold-path time on small frames, and 90 MiB
# of peak RSS at 720p). Callers that ask again for the same frames turn it on, e.g. the annotation
# pipeline (`AnnotateConfig.frame_cache_mb`, its modules share keyframes).
DEFAULT_CACHE_MB = 0.0
DEFAULT_MAX_OPEN_DECODERS = 8
DEFAULT_TOLERANCE_FRAMES = 0.4

_HINTS = {
    "torchcodec": "torchcodec.decoders does not load (it needs FFmpeg shared libraries, e.g. "
    "`apt-get install ffmpeg`, and a torch build it was compiled for)",
    "pyav": "PyAV is not installed (`pip install av`)",
    "ffmpeg": "the ffmpeg executable is not on PATH",
}


@dataclass(frozen=True)
class ProviderConfig:
    """Everything that shapes a provider's output or behaviour (and its fingerprint).

    Args:
        video_backend: "auto" (torchcodec, falling back to PyAV, then the ffmpeg CLI, per file) or one of them.
        camera_key: the default camera (else the first one).
        tolerance_s: how far a requested time may be from its frame (s); None: `tolerance_frames` periods.
        cache_mb: MiB of decoded frames kept for callers that ask for the same frames again (0: off).
        isolate: decode in `isolate_workers` processes (a decoder crash becomes a `DecoderCrashError`).
        workers: threads decoding one call's frames in parallel (each with its own decoders).
        on_error: "raise", or "none" to turn failures into `None` entries (logged).
        video_access: how a Hub dataset's videos are read: "auto", "stream" (byte ranges) or "download"
            (see `lerobot_keyframes.dataset.remote`); frames are identical either way.
    """

    video_backend: VideoBackend = "auto"
    camera_key: str | None = None
    tolerance_s: float | None = None
    tolerance_frames: float = DEFAULT_TOLERANCE_FRAMES
    cache_mb: float = DEFAULT_CACHE_MB
    max_open_decoders: int = DEFAULT_MAX_OPEN_DECODERS
    isolate: bool = False
    isolate_workers: int = 2
    workers: int = 1
    on_error: OnError = "raise"
    decoder_threads: int = 1
    timeout_s: float = 600.0
    video_access: VideoAccess = DEFAULT_VIDEO_ACCESS

    def __post_init__(self) -> None:
        check_video_access(self.video_access)
        if self.video_backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {self.video_backend!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")
        if self.tolerance_s is not None and not self.tolerance_s >= 0:
            raise ValueError(f"tolerance_s must be >= 0, got {self.tolerance_s}")
        if not 0 <= self.tolerance_frames <= 0.5:
            raise ValueError(f"tolerance_frames must be within [0, 0.5] frame periods, got {self.tolerance_frames}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.max_open_decoders < 1:
            raise ValueError(f"max_open_decoders must be >= 1, got {self.max_open_decoders}")
        if not self.cache_mb >= 0:
            raise ValueError(f"cache_mb must be >= 0, got {self.cache_mb}")


def check_video_backend(video_backend: str) -> None:
    """Refuse, before any decode, a video backend that cannot load here (with the one-line fix)."""
    if video_backend == "auto":
        if not any(backend_available(b) for b in VIDEO_BACKENDS if b != "auto"):
            raise VideoBackendUnavailableError("no video backend is usable: install torchcodec, PyAV or ffmpeg")
        return
    if not backend_available(video_backend):
        raise VideoBackendUnavailableError(
            f"video_backend {video_backend!r} is unavailable: {_HINTS[video_backend]}; or use video_backend='auto'"
        )
