"""The one frame path of annotation: modules declare keyframe policies, one stage serves their frames.

Each module says which frames it needs as `frames.policies` per camera (`plan.keyframes`, `vqa.keyframes`,
`interjections.keyframes`); `annotation_policies` unites them per camera. Those frames come either from
the episode row itself — keyframe columns written by `AnnotationKeyframes` (or any `KeyframeTransform`) in
an earlier `datasets.map` — or are decoded here, once per (camera, time): a frame two modules need is
decoded for the first and served from `EpisodeFrames` to the second. Frames a module only knows it needs
once earlier answers are in (the interjection windows before model-chosen boundaries) are decoded then,
through the same store.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..dataset.records import Episode
from ..frames.policies import KeyframePolicy, union
from ..transform import KeyframeTransform, keyframe_column, timestamp_column
from .config import AnnotateConfig, VqaConfig

if TYPE_CHECKING:
    from datasets import Dataset, Features
    from PIL import Image

    from ..frames.provider import FrameProvider

# An episode as the engines hand it: its record, or its row (converted once with `Episode.from_row`).
EpisodeLike = Episode | Mapping[str, Any]


def default_camera(episode: Episode, camera_key: str | None) -> str | None:
    """`--vlm.camera_key` when set (checked against the dataset before any work), else the first camera."""
    if camera_key:
        return camera_key
    return episode.camera_keys[0] if episode.camera_keys else None


def vqa_cameras(episode: Episode, vqa: VqaConfig) -> list[str]:
    """Video cameras, in dataset order (image-stored ones too with `--vqa.image_cameras`)."""
    if not episode.cameras or vqa.image_cameras:
        return list(episode.camera_keys)
    return [c.key for c in episode.cameras if c.storage == "video"]


def module_policies(episode: EpisodeLike, config: AnnotateConfig,
                    camera_key: str | None) -> dict[str, dict[str, KeyframePolicy]]:
    """module -> camera -> the policy of the frames that module decodes up front (enabled modules only)."""
    from . import interjections, plan, vqa

    episode = Episode.from_row(episode)
    camera = default_camera(episode, camera_key)
    if camera is None:
        return {}
    declared = {
        "plan": lambda: plan.keyframes(config.plan, camera),
        "interjections": lambda: interjections.keyframes(camera),
        "vqa": lambda: vqa.keyframes(config.vqa, camera, vqa_cameras(episode, config.vqa)),
    }
    return {m: make() for m, make in declared.items() if getattr(config, m).enabled}


def annotation_policies(episode: EpisodeLike, config: AnnotateConfig,
                        camera_key: str | None) -> dict[str, KeyframePolicy]:
    """camera -> the union of every enabled module's policy on that camera."""
    per_camera: dict[str, list[KeyframePolicy]] = {}
    for policies in module_policies(episode, config, camera_key).values():
        for cam, policy in policies.items():
            per_camera.setdefault(cam, []).append(policy)
    return {cam: (ps[0] if len(ps) == 1 else union(*ps)) for cam, ps in per_camera.items()}


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
    def for_row(cls, row: Mapping[str, Any], provider: FrameProvider) -> EpisodeFrames:
        """The store of one episode row: its record, and the keyframes its columns already hold."""
        return cls(Episode.from_row(row), provider, row_keyframes(row))

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


@dataclass(frozen=True)
class AnnotationKeyframes(KeyframeTransform):
    """`episodes.map(AnnotationKeyframes.for_annotation(episodes, config), batched=True)`: the frames the
    annotation modules declared, per camera, as keyframe columns (lossless PNG, so annotating the mapped
    rows gives exactly the answers of decoding in the run). `Annotator` reads them from the rows."""

    annotate: AnnotateConfig | None = None
    camera_key: str | None = None
    visual: str = "none"
    image_format: str = "png"

    @classmethod
    def for_annotation(cls, episodes: Dataset, config: AnnotateConfig, camera_key: str | None = None,
                       **options: Any) -> AnnotationKeyframes:
        keys = list(dict.fromkeys(k for row_keys in episodes["camera_keys"] for k in row_keys))
        if not keys:
            raise ValueError("the dataset has no cameras to take keyframes from")
        options.setdefault("video_backend", config.video_backend)  # the run's --video_backend
        options.setdefault("video_access", config.video_access)  # and --video_access
        return cls(policy="uniform:1", cameras=tuple(keys), annotate=config, camera_key=camera_key, **options)

    def output_columns(self) -> list[str]:
        return [c for cam in self._cameras_or_raise() for c in (keyframe_column(cam), timestamp_column(cam))]

    def features(self, input_features: Mapping[str, Any] | None = None) -> Features:
        from datasets import Features

        full = super().features(input_features)
        return Features({k: v for k, v in full.items() if k != "messages"})

    def process_episode(self, row: Mapping[str, Any] | Episode) -> dict[str, Any]:
        if self.annotate is None:
            raise ValueError("AnnotationKeyframes needs the run's AnnotateConfig: use for_annotation(episodes, config)")
        episode = self._episode(row)
        policies = annotation_policies(episode, self.annotate, self.camera_key)
        requests = [(episode, [float(t) for t in policy.timestamps(episode)], cam) for cam, policy in policies.items()]
        decoded = self._decode(episode, requests) if requests else []
        out: dict[str, Any] = {c: [] for c in self.output_columns()}
        for (_, times, cam), frames in zip(requests, decoded):
            out[keyframe_column(cam)] = [self._encode(im) for im in frames.to_pil()]
            out[timestamp_column(cam)] = times
        return out
