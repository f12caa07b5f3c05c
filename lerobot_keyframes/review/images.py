"""Frames for the review pages: JPEG thumbnails and VQA frames, decoded in one batched call per camera."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..utils.timeline import evenly_spaced
from .config import ReviewConfig
from .model import EpisodeView

if TYPE_CHECKING:
    from ..frames.provider import FrameProvider

logger = logging.getLogger(__name__)


def spread(lo: int, hi: int, k: int) -> list[int]:
    """k frame indices spread evenly over [lo, hi)."""
    return (lo + evenly_spaced(hi - lo, k)).tolist()


def camera_slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key.removeprefix("observation.images."))


def episode_dir_name(episode_index: int) -> str:
    return f"episode_{episode_index:06d}"


def _wanted_frames(view: EpisodeView, camera: str, config: ReviewConfig) -> tuple[list[int], set[int]]:
    """Frames to decode for a camera (thumbnails, span strips, VQA, traces) and which of them are shown large."""
    n = len(view.timestamps)
    wanted = set(spread(0, n, config.thumbs_per_camera))
    for s in view.spans:
        wanted.update(spread(s.start_frame, s.end_frame, config.strip_frames))
    large = {v.frame for v in [*view.vqa, *view.traces] if v.camera == camera}
    return sorted(wanted | large), large


def _resize(image: Any, width: int) -> Any:
    from PIL import Image

    if image.width <= width:
        return image
    return image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.BILINEAR)


def _to_pil(frames: Any) -> list[Any]:
    """PIL images of a `Frames` batch, converted in one tensor op (per-frame `to_pil` copies N times)."""
    from PIL import Image

    data = frames.data
    if isinstance(data, list):
        return frames.to_pil()
    arr = data.permute(0, 2, 3, 1).contiguous().numpy()
    return [Image.fromarray(a) for a in arr]


def decode_episode_images(view: EpisodeView, provider: FrameProvider | None, row: Mapping[str, Any], assets: Path,
                          config: ReviewConfig) -> dict[str, dict[str, Any]]:
    """Write the episode's JPEGs; per camera: {"thumbs": {frame: relpath}, "large": {frame: (relpath, w, h)},
    "native": (w, h), "first": PIL image of the first thumbnail frame or None}."""
    out: dict[str, dict[str, Any]] = {}
    for cam in view.cameras:
        key = cam["key"]
        frames, vqa = _wanted_frames(view, key, config)
        info: dict[str, Any] = {"thumbs": {}, "large": {}, "native": (cam.get("width"), cam.get("height")),
                                "pil": {}}
        out[key] = info
        if not frames or provider is None:
            continue
        times = [float(view.timestamps[i]) for i in frames]
        try:
            decoded = _to_pil(provider.frames_at(row, times, key))
        except Exception as exc:  # a broken camera must not lose the whole review
            logger.warning("episode %d camera %s: frames not decoded: %s", view.episode_index, key, exc)
            continue
        cam_dir = assets / camera_slug(key)
        cam_dir.mkdir(parents=True, exist_ok=True)
        rel = f"{camera_slug(key)}"
        for idx, image in zip(frames, decoded):
            if image is None:
                continue
            info["native"] = (image.width, image.height)
            small = _resize(image, config.thumb_width)
            small.save(cam_dir / f"{idx:06d}.jpg", quality=config.jpeg_quality)
            info["thumbs"][idx] = f"{rel}/{idx:06d}.jpg"
            info["pil"][idx] = small
            if idx in vqa:
                large = _resize(image, config.vqa_width)
                large.save(cam_dir / f"{idx:06d}_vqa.jpg", quality=config.jpeg_quality)
                info["large"][idx] = (f"{rel}/{idx:06d}_vqa.jpg", large.width, large.height)
    return out

