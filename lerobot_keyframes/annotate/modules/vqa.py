"""`vqa` module: frame-grounded questions and answers at `vqa_emission_hz`, per camera or rotating.

Answers follow lerobot's five shapes. Boxes and points carry their coordinate convention and the size
of the image the model saw (`"coords": "pixel"` for Qwen2/2.5-VL, `"norm1000"` for Qwen3-VL), so users
can convert them; lerobot's shape check accepts the extra keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...dataset.records import Episode
from ...frames.policies import Fps, KeyframePolicy, Turns, fps
from ...language.rows import LanguageRow
from ...vlm.families import vision_family
from ..config import VqaConfig
from ..context import EpisodeContext, EpisodeView
from . import schemas
from .base import Module
from .plan import PlanResult
from .prompting import load_prompt, user_turn

if TYPE_CHECKING:
    from ...frames.policies.base import EpisodeLike

TYPE_INSTRUCTIONS = {
    "bbox": "Give a box around each object you name as [x1, y1, x2, y2] (top-left and bottom-right) {unit}.",
    "keypoint": "Give one point [x, y] on the object you name {unit}.",
    "count": "Count the objects of one kind that are visible.",
    "attribute": "Name an object, one of its attributes (colour, shape, state) and the observed value.",
    "spatial": "Relate two visible objects with one of: left_of, right_of, on, in, above, below, near.",
}
ANSWER_SHAPES = {
    "bbox": '{"detections": [{"label": "...", "bbox_format": "xyxy", "bbox": [x1, y1, x2, y2]}]}',
    "keypoint": '{"label": "...", "point_format": "xy", "point": [x, y]}',
    "count": '{"label": "...", "count": <int>}',
    "attribute": '{"label": "...", "attribute": "...", "value": "..."}',
    "spatial": '{"subject": "...", "relation": "...", "object": "..."}',
}


def model_input_size(width: int, height: int, max_side: int, family: str) -> tuple[int, int]:
    """Resize to fit `max_side`, rounded to the vision patch grid, so the processor keeps this exact size."""
    patch = vision_family(family).factor
    scale = min(1.0, max_side / max(width, height))
    w = max(patch, int(round(width * scale / patch)) * patch)
    h = max(patch, int(round(height * scale / patch)) * patch)
    return w, h


@dataclass(frozen=True)
class TickRuns(KeyframePolicy):
    """lerobot-annotate's `--vqa.K`: the `k` consecutive frames from each tick of `tick` (cut at the
    episode's end), the `offset`-th of every `step` ticks (cameras taking turns).

    A frame is asked about once per camera; with turns, each tick's own frame is its camera's and a run
    stops short of frames another camera already has, so no frame carries VQA of two cameras (what
    lerobot 0.6.0/0.6.1 reject).
    """

    tick: KeyframePolicy = field(default_factory=lambda: Fps(1.0))
    k: int = 1
    step: int = 1
    offset: int = 0

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:
        length = len(Episode.from_row(episode).check_timestamps())
        starts = [int(i) for i in self.tick.frame_indices(episode)]
        owner = {start: j % self.step for j, start in enumerate(starts)}
        for j, start in enumerate(starts):
            for i in range(start + 1, min(start + self.k, length)):
                owner.setdefault(i, j % self.step)
        return np.array(sorted(i for i, turn in owner.items() if turn == self.offset), dtype=np.int64)

    def spec(self) -> str:
        return f"{self.tick.spec()}*{self.k}" + (f"~{self.offset}/{self.step}" if self.step > 1 else "")


def vqa_cameras(episode: Episode, vqa: VqaConfig) -> list[str]:
    """Video cameras, in dataset order (image-stored ones too with `--vqa.image_cameras`)."""
    if not episode.cameras or vqa.image_cameras:
        return list(episode.camera_keys)
    return [c.key for c in episode.cameras if c.storage == "video"]


def tick_keyframes(cfg: VqaConfig, default_camera: str, cameras: list[str]) -> dict[str, KeyframePolicy]:
    """The VQA ticks per camera: `vqa_emission_hz` on every camera, or the cameras taking turns; with
    `K` > 1 each tick is the run of K consecutive frames from it (lerobot-annotate's `--vqa.K`)."""
    cams = [default_camera] if cfg.restrict_to_default_camera else list(cameras)
    if not cams:
        return {}
    tick = fps(cfg.vqa_emission_hz)
    turns = cfg.rotate_cameras and len(cams) > 1
    if cfg.K > 1:
        return {cam: TickRuns(tick, cfg.K, len(cams) if turns else 1, k if turns else 0) for k, cam in enumerate(cams)}
    if turns:
        return {cam: Turns(tick, len(cams), k) for k, cam in enumerate(cams)}
    return {cam: tick for cam in cams}


def ticks(episode: EpisodeView) -> list[tuple[int, str]]:
    """(frame index, camera) pairs in time order (cameras in dataset order within a tick)."""
    cfg = episode.config.vqa
    policies = tick_keyframes(cfg, episode.default_camera, vqa_cameras(episode.record, cfg))
    order = {cam: k for k, cam in enumerate(policies)}
    pairs = [(int(i), cam) for cam, policy in policies.items() for i in policy.frame_indices(episode.episode)]
    return sorted(pairs, key=lambda p: (p[0], order[p[1]]))


def finalize_answer(answer: dict[str, Any], qtype: str, convention: str, size: tuple[int, int]) -> dict[str, Any]:
    """Clamp coordinates to the image (per axis) and record the convention and image size."""
    w, h = size
    x_max, y_max = (1000.0, 1000.0) if convention == "norm1000" else (float(w), float(h))

    def clamp(values: list[Any]) -> list[float]:
        out = []
        for k, v in enumerate(values):
            v = float(v) if isinstance(v, (int, float)) and math.isfinite(float(v)) else 0.0
            out.append(round(min(max(v, 0.0), x_max if k % 2 == 0 else y_max), 2))
        return out

    answer = dict(answer)
    if qtype == "bbox":
        dets = []
        for det in answer.get("detections", []):
            x1, y1, x2, y2 = clamp(list(det.get("bbox", [0, 0, 0, 0]))[:4] + [0] * (4 - len(det.get("bbox", []))))
            dets.append({**det, "bbox": [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], "bbox_format": "xyxy"})
        answer["detections"] = dets
    elif qtype == "keypoint":
        answer["point"] = clamp(list(answer.get("point", [0, 0]))[:2])
        answer["point_format"] = "xy"
    if qtype in ("bbox", "keypoint"):
        answer["coords"] = convention
        answer["image_size"] = [w, h]
    return answer


class VqaModule(Module):
    """Frame-grounded questions and answers in lerobot's five shapes, per camera or with cameras taking turns."""

    name = "vqa"
    styles = frozenset({"vqa"})
    config_class = VqaConfig
    uses = ("plan",)  # the effective task, when the plan module ran
    prompts = ("vqa",)

    def keyframes(self, episode: EpisodeView, config: VqaConfig,
                  upstream: Mapping[str, Any] | None = None) -> dict[str, KeyframePolicy]:
        return tick_keyframes(config, episode.default_camera, vqa_cameras(episode.record, config))

    async def run(self, ctx: EpisodeContext, upstream: Mapping[str, Any]) -> list[LanguageRow]:
        cfg = ctx.config.vqa
        plan: PlanResult | None = upstream.get("plan")
        task = (plan.task if plan is not None else "") or ctx.task
        family = ctx.model_family
        convention = vision_family(family).coordinates
        rng = ctx.rng(self.name)
        picks = ticks(ctx)
        by_camera: dict[str, list[int]] = {}
        for index, cam in picks:
            by_camera.setdefault(cam, []).append(index)
        images: dict[tuple[int, str], Any] = {}
        for cam, indices in by_camera.items():
            frames = await ctx.frames_at(cam, [ctx.frame_time(i) for i in indices])
            for i, im in zip(indices, frames):
                images[(i, cam)] = im

        conversations, metas, schema_list = [], [], []
        for index, cam in picks:
            qtype = rng.choice(list(cfg.question_types))
            image = images[(index, cam)]
            size = model_input_size(image.width, image.height, cfg.max_side, family)
            image = image.resize(size) if image.size != size else image
            x_max, y_max = (1000, 1000) if convention == "norm1000" else size
            unit = "in 0-1000 units of the image width and height" if convention == "norm1000" else "in pixels"
            text = load_prompt("vqa").render(
                width=size[0], height=size[1], task=task, question_type=qtype,
                type_instructions=TYPE_INSTRUCTIONS[qtype].format(unit=unit), answer_shape=ANSWER_SHAPES[qtype],
            )
            conversations.append(user_turn([{"type": "image", "image": image}], text))
            schema_list.append(schemas.vqa_schema(qtype, x_max, y_max))
            metas.append((index, cam, qtype, size))
        rows: list[LanguageRow] = []
        if not conversations:
            return rows
        answers = await ctx.ask(conversations, schema_list)
        for (index, cam, qtype, size), answer in zip(metas, answers):
            t = ctx.frame_time(index)
            final = finalize_answer(answer["answer"], qtype, convention, size)
            rows.append(LanguageRow("user", " ".join(answer["question"].split()), "vqa", t, camera=cam))
            # question_type is checked by the validator, not stored in the parquet
            rows.append(LanguageRow("assistant", json.dumps(final, sort_keys=True), "vqa", t, camera=cam,
                                    question_type=qtype))
        return rows
