"""`plan` module: effective task, task rephrasings, subtasks (describe then segment, windowed), plan, memory.

Its result (`PlanResult`: the effective task and the subtask spans) is what `interjections`, `vqa` and a user's
own modules build on; it is staged with the rows (the `info` of `plan.jsonl`) and rebuilt from there on resume.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...frames import contact_sheets
from ...frames.policies import KeyframePolicy, fps, motion
from ...language.rows import LanguageRow
from ..config import PlanConfig
from ..context import EpisodeContext, EpisodeView
from . import grounding as gr
from . import schemas
from .base import KeyInputs, Module, ModuleOutput
from .prompting import load_prompt, user_turn
from .spans import Span, clean_spans, format_plan, merge_windows, normalize_label

logger = logging.getLogger(__name__)

PLACEHOLDER_TASKS = {"", "task", "none", "null", "n/a", "todo", "default", "debug", "test"}


def needs_video_task(task: str, mode: str, min_words: int) -> bool:
    if mode == "always":
        return True
    if mode == "off":
        return False
    return task.strip().lower() in PLACEHOLDER_TASKS or len(task.split()) < min_words


def _sheet_blocks(ctx: EpisodeContext, images: list[Any], times: list[float]) -> list[dict[str, Any]]:
    """Contact sheets as lerobot-annotate makes them: JPEG-compressed at `--plan.contact_sheet_quality`, so
    every backend sees the same compressed pixels (in-process engines get the decoded JPEG; the openai
    backend re-encodes those pixels at `--vlm.jpeg_quality`, as lerobot re-encodes them as PNG)."""
    from PIL import Image

    cfg = ctx.config.plan
    sheets = contact_sheets(
        images, times, columns=cfg.contact_sheet_columns, tile_width=cfg.contact_sheet_frame_width,
        frames_per_sheet=cfg.contact_sheet_frames_per_sheet, format="jpeg", quality=cfg.contact_sheet_quality,
    )
    return [{"type": "image", "image": Image.open(io.BytesIO(jpeg)).convert("RGB")} for jpeg in sheets]


async def effective_task(ctx: EpisodeContext, images: list[Any], times: list[float]) -> str:
    cfg = ctx.config.plan
    if not needs_video_task(ctx.task, cfg.derive_task_from_video, cfg.derive_task_min_words):
        return ctx.task
    step = max(1, len(images) // 8)
    blocks = _sheet_blocks(ctx, images[::step], times[::step])
    text = load_prompt("plan_task_from_video").render(task=ctx.task or "(none)")
    (answer,) = await ctx.ask([user_turn(blocks, text)], [schemas.task_schema()])
    return normalize_label(answer["task"]) or ctx.task


async def segment(ctx: EpisodeContext, task: str, images: list[Any], times: list[float],
                  grounding: Any = None, snaps: list[Any] | None = None) -> list[Span]:
    """Windows of at most `max_frames_per_prompt` frames; describe-then-segment per window; merged and cleaned.
    With `grounding` (grounding.Grounding) and `events_in_prompt`, each window's robot events are in its prompt;
    with a `snaps` list too, boundaries are snapped to the events (grounding.ground_spans) and the moves recorded."""
    cfg = ctx.config.plan
    size = max(2, cfg.max_frames_per_prompt)
    windows = [(images[i : i + size], times[i : i + size]) for i in range(0, len(images), size)]
    raw_windows = []
    for k, (w_images, w_times) in enumerate(windows):
        w_start = w_times[0]
        w_end = windows[k + 1][1][0] if k + 1 < len(windows) else ctx.duration
        blocks = _sheet_blocks(ctx, w_images, w_times)
        description_block = ""
        if cfg.subtask_describe_first:
            text = load_prompt("plan_describe").render(task=task)
            (desc,) = await ctx.ask([user_turn(blocks, text)], [schemas.describe_schema()])
            description_block = f"\nWhat happens, as described by an observer:\n{desc['description']}\n"
        text = load_prompt("plan_segment").render(
            task=task, window_start=w_start, window_end=w_end, duration=ctx.duration,
            description_block=description_block, min_subtask_seconds=cfg.min_subtask_seconds,
            max_steps=cfg.plan_max_steps, events_block=_events_block(cfg, grounding, w_start, w_end),
        )
        (answer,) = await ctx.ask(
            [user_turn(blocks, text)], [schemas.segment_schema(w_start, w_end, cfg.plan_max_steps)]
        )
        raw_windows.append(answer.get("subtasks", []))
    if snaps is not None and grounding is not None:
        spans, moved = gr.ground_spans(
            merge_windows(raw_windows), ctx.timestamps, ctx.fps, grounding.events, tolerance_s=cfg.snap_tolerance_s,
            min_seconds=cfg.min_subtask_seconds, max_steps=cfg.plan_max_steps, fallback_text=task or "do the task",
        )
        snaps.extend(moved)
        return spans
    return clean_spans(
        merge_windows(raw_windows), ctx.timestamps, ctx.fps, min_seconds=cfg.min_subtask_seconds,
        max_steps=cfg.plan_max_steps, fallback_text=task or "do the task",
    )


def _events_block(cfg: Any, grounding: Any, start: float, end: float) -> str:
    if grounding is None or grounding.signal is None or not cfg.events_in_prompt:
        return ""
    return gr.events_text(grounding.events, start, end, grounding.signal.column)


def _distinct(task: str, phrases: list[Any], limit: int | None = None) -> list[str]:
    seen, out = {task.lower()}, []
    for phrase in phrases:
        phrase = " ".join(str(phrase).split()).strip("\"'")
        if phrase and phrase.lower() not in seen:
            seen.add(phrase.lower())
            out.append(phrase)
    return out[:limit]


async def rephrasings(ctx: EpisodeContext, task: str) -> list[str]:
    n = ctx.config.plan.n_task_rephrasings
    if n <= 0 or not task:
        return []
    text = load_prompt("plan_task_aug").render(task=task, n=n)
    (answer,) = await ctx.ask([user_turn([], text)], [schemas.rephrasings_schema(n)])
    return _distinct(task, answer["rephrasings"], n)


async def axis_variants(ctx: EpisodeContext, task: str) -> list[str]:
    """lerobot-annotate's `--plan.task_aug_axes`: one call for variants along five named axes (paraphrase, no
    arm, no orientation, no grasp method, two omissions), flattened in axis order, each axis at most its count."""
    axes = ctx.config.plan.task_aug_axes
    counts = {axis: max(0, int(getattr(axes, axis))) for axis in schemas.TASK_AUG_AXES}
    if not task or not any(counts.values()):
        return []
    text = load_prompt("plan_task_aug_axes").render(task=task, **counts)
    (answer,) = await ctx.ask([user_turn([], text)], [schemas.task_aug_axes_schema(counts)])
    return _distinct(task, [p for axis in schemas.TASK_AUG_AXES for p in answer.get(axis, [])[: counts[axis]]])


async def task_variants(ctx: EpisodeContext, task: str) -> list[str]:
    """The task_aug phrasings as lerobot-annotate writes them: the task itself first, then the 5-axis
    variants (`--plan.task_aug_axes.enabled`) or else `--plan.n_task_rephrasings` rephrasings; none when
    neither asks for any."""
    cfg = ctx.config.plan
    if not task:
        return []
    if cfg.task_aug_axes.enabled:
        return [task, *await axis_variants(ctx, task)]
    if cfg.n_task_rephrasings > 0:
        return [task, *await rephrasings(ctx, task)]
    return []


def _segment_times(ctx: EpisodeContext, span: Span, n: int) -> list[float]:
    """Up to `n` frames evenly spread over the span's own frames (its exact parquet times)."""
    last = max(span.start_index, span.end_index - 1)
    picks = np.unique(np.rint(np.linspace(span.start_index, last, max(1, n))).astype(int))
    return [ctx.frame_time(int(i)) for i in picks]


async def relabel(ctx: EpisodeContext, task: str, spans: list[Span], camera: str) -> list[Span]:
    """lerobot-annotate's `--plan.subtask_seeded_relabel`: each span relabelled from the contact sheets of the
    previous, its own and the next span (`--plan.subtask_relabel_frames` frames each), its first label given
    as a strong prior. Boundaries stay; one call per span, all asked at once (they batch)."""
    n = ctx.config.plan.subtask_relabel_frames
    sheets = []
    for span in spans:
        times = _segment_times(ctx, span, n)
        sheets.append(_sheet_blocks(ctx, await ctx.frames_at(camera, times), times))
    conversations = []
    for k, span in enumerate(spans):
        parts = [("the previous segment", k - 1), ("the target segment", k), ("the next segment", k + 1)]
        blocks, lines, first = [], [], 1
        for what, j in parts:
            if 0 <= j < len(spans):
                count = len(sheets[j])
                where = f"image {first}" if count == 1 else f"images {first}-{first + count - 1}"
                lines.append(f"- {where}: {what} ({spans[j].start:.2f} s to {spans[j].end:.2f} s)")
                blocks += sheets[j]
                first += count
        text = load_prompt("plan_relabel").render(
            task=task, count=len(spans), index=k + 1, start=span.start, end=span.end, seed_label=span.text,
            sheets="\n".join(lines),
        )
        conversations.append(user_turn(blocks, text))
    answers = await ctx.ask(conversations, [schemas.relabel_schema()] * len(spans))
    return [dataclasses.replace(span, text=normalize_label(answer["label"]) or span.text)
            for span, answer in zip(spans, answers)]


async def memories(ctx: EpisodeContext, task: str, spans: list[Span]) -> list[str]:
    """Chained: memory k summarises memory k-1 plus the subtask completed at span k's start."""
    out: list[str] = []
    previous = "(nothing yet)"
    for span in spans[:-1]:
        text = load_prompt("plan_memory").render(task=task, previous_memory=previous, completed=span.text)
        (answer,) = await ctx.ask([user_turn([], text)], [schemas.memory_schema()])
        previous = " ".join(str(answer["memory"]).split())
        out.append(previous)
    return out


@dataclass(frozen=True)
class PlanResult:
    """What the plan module passes downstream: the effective task, the subtask spans, the camera of its sheets and
    how the boundaries were grounded in the robot's signals (`grounding.grounding_info`)."""

    task: str
    spans: tuple[Span, ...]
    camera: str | None = None
    grounding: Mapping[str, Any] = field(default_factory=dict)


def sheet_keyframes(cfg: PlanConfig, camera: str) -> dict[str, KeyframePolicy]:
    """The frames of the contact sheets: `frames_per_second` on the default camera (+ gripper/pause
    keyframes with `keyframe_policy="motion+fps"`)."""
    policy = fps(cfg.frames_per_second)
    if cfg.keyframe_policy == "motion+fps":
        policy = motion() | policy
    return {camera: policy}


class PlanModule(Module):
    """Subtasks from timestamped contact sheets, with plan, memory and task rephrasing rows."""

    name = "plan"
    styles = frozenset({"subtask", "plan", "memory", "task_aug"})
    config_class = PlanConfig
    prompts = ("plan_describe", "plan_segment", "plan_task_from_video", "plan_task_aug", "plan_task_aug_axes",
               "plan_relabel", "plan_memory")

    def writes(self, config: PlanConfig) -> frozenset[str]:
        off = {"plan"} if not config.emit_plan else set()
        return self.styles - off - ({"memory"} if not config.emit_memory else set())

    def key_parts(self, config: PlanConfig, inputs: KeyInputs) -> tuple[Any, ...]:
        motion = inputs.run.motion  # the grounding signal: --motion.signal / --motion.gripper_index
        return (*super().key_parts(config, inputs), (motion.signal, motion.gripper_index))

    def keyframes(self, episode: EpisodeView, config: PlanConfig,
                  upstream: Mapping[str, Any] | None = None) -> dict[str, KeyframePolicy]:
        return sheet_keyframes(config, episode.default_camera)

    async def run(self, ctx: EpisodeContext, upstream: Mapping[str, Any]) -> ModuleOutput:
        """Rows of the plan module and the result later modules need (spans, effective task)."""
        cfg = ctx.config.plan
        camera = ctx.default_camera
        images, times = await ctx.keyframes(camera, sheet_keyframes(cfg, camera)[camera])
        task = await effective_task(ctx, images, times)
        ground = await asyncio.to_thread(gr.episode_grounding, ctx.episode, ctx.config.motion.signal,
                                         ctx.config.motion.gripper_index)
        snap = gr.should_snap(cfg.snap_to_signals, ground)
        snaps: list[Any] | None = [] if snap else None
        spans = await segment(ctx, task, images, times, ground, snaps)
        if cfg.subtask_seeded_relabel and spans:
            spans = await relabel(ctx, task, spans, camera)
        rows: list[LanguageRow] = []
        t0 = ctx.frame_time(0)
        for phrase in await task_variants(ctx, task):
            rows.append(LanguageRow("user", phrase, "task_aug", t0))
        mems = await memories(ctx, task, spans) if cfg.emit_memory else []
        for k, span in enumerate(spans):
            rows.append(LanguageRow("assistant", span.text, "subtask", span.start))
            if cfg.emit_plan:
                rows.append(LanguageRow("assistant", format_plan([s.text for s in spans[k:]]), "plan", span.start))
            if cfg.emit_memory and k > 0:
                rows.append(LanguageRow("assistant", mems[k - 1], "memory", span.start))
        grounding = gr.grounding_info(ground, snaps, snap, cfg.snap_tolerance_s)
        return ModuleOutput(rows, PlanResult(task, tuple(spans), camera, grounding))

    def save_result(self, result: PlanResult) -> dict[str, Any]:
        """The staged `info` (the same object as before the module interface, so older staging resumes)."""
        return {"task": result.task, "spans": [s.as_dict() for s in result.spans], "camera": result.camera,
                "grounding": dict(result.grounding)}

    def load_result(self, info: Mapping[str, Any]) -> PlanResult | None:
        if "spans" not in info:
            return None
        spans = tuple(Span(text=str(s["text"]), start_index=int(s["start_index"]), end_index=int(s["end_index"]),
                           start=float(s["start"]), end=float(s["end"])) for s in info["spans"])
        return PlanResult(str(info.get("task") or ""), spans, info.get("camera"), info.get("grounding") or {})

    def summarize(self, staged: Mapping[int, Mapping[str, Any] | None]) -> tuple[list[str], dict[str, Any]]:
        """Which episodes had their boundaries snapped to robot events (summary lines, provenance `grounding`)."""
        return gr.grounding_summary(staged), {"grounding": gr.grounding_provenance(staged)}
