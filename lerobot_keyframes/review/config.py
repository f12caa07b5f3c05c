"""`ReviewConfig`: what the review site shows and how hard it works to build it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..dataset.remote import DEFAULT_VIDEO_ACCESS, VideoAccess, check_video_access
from ..frames.config import VideoBackend

VideoMode = Literal["link", "copy", "none"]
VIDEO_MODES: tuple[str, ...] = get_args(VideoMode)


@dataclass(frozen=True)
class ReviewConfig:
    """Knobs of `build_review`; every CLI flag of `lerobot-keyframes review` maps to one field.

    Thumbnails are small JPEGs (the site must stay light for 1000s of episodes); VQA frames are larger
    so boxes and points can be checked by eye.
    """

    thumbs_per_camera: int = 8  # keyframe thumbnails along each camera's timeline
    strip_frames: int = 4  # frames per subtask span in the span strips
    thumb_width: int = 160  # thumbnail width (px)
    vqa_width: int = 320  # VQA frame width (px); boxes/points are drawn on this image
    jpeg_quality: int = 70  # JPEG quality (1-95) of thumbnails and VQA frames
    workers: int = 0  # processes; 0: auto (up to 4, only for more than a few episodes), 1: in-process
    video_backend: VideoBackend = "auto"  # video decoder (auto: falls back torchcodec, pyav, ffmpeg)
    video_access: VideoAccess = DEFAULT_VIDEO_ACCESS  # videos of a Hub source not on disk: auto (thumbnails by byte range; the player's videos downloaded) | stream (no player video) | download
    validate: bool = True  # run the validator and show its status per episode
    videos: VideoMode = "link"  # player videos under OUT/videos: hard links (copies across file systems), copies, or no player

    def __post_init__(self) -> None:
        for name in ("thumbs_per_camera", "strip_frames"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("thumb_width", "vqa_width"):
            if getattr(self, name) < 16:
                raise ValueError(f"{name} must be >= 16 px, got {getattr(self, name)}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be within [1, 95], got {self.jpeg_quality}")
        if self.videos not in VIDEO_MODES:
            raise ValueError(f"videos must be one of {VIDEO_MODES}, got {self.videos!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        check_video_access(self.video_access)
