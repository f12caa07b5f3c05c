"""The one frame path of annotation: modules declare keyframe policies, one stage serves their frames.

Each module says which frames it needs as `frames.policies` per camera (`Module.keyframes`);
`annotation_policies` unites every enabled module's per camera. Those frames come either from the episode row
itself — keyframe columns written by `AnnotationKeyframes` (or any `KeyframeTransform`) in an earlier
`datasets.map` — or are decoded in the run, once per (camera, time), by the episode's frame store
(`frame_store.EpisodeFrames`). Frames a module only knows it needs once earlier answers are in (the interjection
windows before model-chosen boundaries) are decoded then, through the same store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..dataset.records import Episode
from ..frames.policies import KeyframePolicy, union
from ..transform import KeyframeTransform, keyframe_column, timestamp_column
from .config import AnnotateConfig
from .context import EpisodeView
from .modules.registry import run_modules

if TYPE_CHECKING:
    from datasets import Dataset, Features

# An episode as the engines hand it: its record, or its row (converted once with `Episode.from_row`).
EpisodeLike = Episode | Mapping[str, Any]


def module_policies(episode: EpisodeLike, config: AnnotateConfig,
                    camera_key: str | None) -> dict[str, dict[str, KeyframePolicy]]:
    """module -> camera -> the policy of the frames that module decodes up front (enabled modules only)."""
    view = EpisodeView(episode, config, camera_key)
    if not view.cameras:
        return {}
    modules = run_modules(config)
    return {m.name: m.keyframes(view, modules.config_of(m)) for m in modules.enabled}


def annotation_policies(episode: EpisodeLike, config: AnnotateConfig,
                        camera_key: str | None) -> dict[str, KeyframePolicy]:
    """camera -> the union of every enabled module's policy on that camera."""
    per_camera: dict[str, list[KeyframePolicy]] = {}
    for policies in module_policies(episode, config, camera_key).values():
        for cam, policy in policies.items():
            per_camera.setdefault(cam, []).append(policy)
    return {cam: (ps[0] if len(ps) == 1 else union(*ps)) for cam, ps in per_camera.items()}


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
