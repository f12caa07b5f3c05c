"""One episode's frames by (camera, exact time): taken from the row's keyframe columns, else decoded once, then
shared by every module that asks for them (`EpisodeContext.frames_at`)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..dataset.records import Episode
from ..transform import keyframe_column, timestamp_column

if TYPE_CHECKING:
    from PIL import Image

    from ..frames.provider import FrameProvider


def row_keyframes(row: Mapping[str, Any]) -> dict[tuple[str, float], Any]:
    """(camera, time) -> stored image (datasets Image value: bytes/path dict or PIL) from a row's keyframe
    columns, as `KeyframeTransform`/`AnnotationKeyframes` write them."""
    out: dict[tuple[str, float], Any] = {}
    for cam in row.get("camera_keys") or ():
        images, times = row.get(keyframe_column(cam)), row.get(timestamp_column(cam))
        if not images or times is None:
            continue
        for t, image in zip(times, images):
            if image is not None:
                out[(cam, float(t))] = image
    return out


def _to_pil(value: Any) -> Image.Image:
    from PIL import Image as PILImage

    if isinstance(value, PILImage.Image):
        return value.convert("RGB") if value.mode != "RGB" else value
    if isinstance(value, Mapping):
        data = value.get("bytes")
        image = PILImage.open(io.BytesIO(data)) if data is not None else PILImage.open(value["path"])
    else:
        image = PILImage.open(io.BytesIO(value))
    image.load()
    return image.convert("RGB") if image.mode != "RGB" else image


@dataclass
class FrameStats:
    decoded: int = 0  # frames this stage decoded from video
    from_row: int = 0  # frames taken from the row's keyframe columns
    reused: int = 0  # requests served by a frame another module (or an earlier call) already had


@dataclass
class EpisodeFrames:
    """One episode's frames by (camera, exact parquet time): from the row, else decoded once, then shared."""

    episode: Episode
    provider: FrameProvider
    stored: dict[tuple[str, float], Any] = field(default_factory=dict)  # encoded, from the row
    stats: FrameStats = field(default_factory=FrameStats)
    _images: dict[tuple[str, float], Image.Image] = field(default_factory=dict)

    @classmethod
    def for_row(cls, row: Mapping[str, Any] | Episode, provider: FrameProvider | None) -> EpisodeFrames:
        """The store of one episode row: its record, and the keyframes its columns already hold."""
        return cls(Episode.from_row(row), provider, row_keyframes(row) if isinstance(row, Mapping) else {})

    async def get(self, camera: str, times: Sequence[float]) -> list[Image.Image]:
        """The frames of `camera` at these exact episode times, in order (a missing frame raises)."""
        wanted = [float(t) for t in times]
        missing = []
        for t in dict.fromkeys(wanted):
            key = (camera, t)
            if key in self._images:
                self.stats.reused += 1
            elif key in self.stored:
                self._images[key] = _to_pil(self.stored[key])
                self.stats.from_row += 1
            else:
                missing.append(t)
        if missing:
            frames = await asyncio.to_thread(self.provider.frames_at, self.episode, missing, camera)
            images = frames.to_pil()
            lost = [t for t, im in zip(missing, images) if im is None]
            if len(images) != len(missing) or lost:
                raise ValueError(f"file {frames.file}: asked {len(missing)} frames, no frame at time(s) "
                                 f"{lost or missing[len(images):]}")
            self._images.update({(camera, t): im for t, im in zip(missing, images)})
            self.stats.decoded += len(missing)
        return [self._images[(camera, t)] for t in wanted]

    def retain(self, keep: Mapping[str, Sequence[float]]) -> None:
        """Drop decoded frames that no later module declared (keeps memory per episode bounded)."""
        wanted = {(cam, float(t)) for cam, ts in keep.items() for t in ts}
        for key in [k for k in self._images if k not in wanted]:
            del self._images[key]
