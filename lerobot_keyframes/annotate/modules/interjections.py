"""`interjections` module: a spoken acknowledgement at the first frame, then user cues on subtask boundaries.

Each cue is an `interjection` event, a `say` speech atom with the reply, and a `plan` row at the same
frame whose steps take the cue into account (it replaces any other module's plan row at that time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...frames.policies import KeyframePolicy, at, union
from ...language.rows import LanguageRow, speech_atom
from ..config import InterjectionsConfig
from ..context import EpisodeContext, EpisodeView
from . import schemas
from .base import SPEECH, Module
from .plan import PlanResult
from .prompting import image_blocks, load_prompt, user_turn
from .spans import Span, format_plan


def cue_windows(episode: EpisodeView, spans: tuple[Span, ...]) -> list[tuple[int, KeyframePolicy]]:
    """(span index, policy of the window's frames) for each chosen boundary.

    Without `interjection_window_seconds`: the `interjection_window_frames` frames up to the boundary.
    With it, lerobot-annotate 0.6.1's window: that many frames evenly spread over the given seconds
    centred on the boundary (the end of the previous subtask and the start of the next), clamped to
    the episode, each snapped to the nearest frame, repeats dropped.
    """
    cfg = episode.config.interjections
    n = max(1, cfg.interjection_window_frames)
    out = []
    for k in choose_boundaries(episode, spans):
        start_index = spans[k].start_index
        if cfg.interjection_window_seconds is None:
            lo = max(0, start_index - n + 1)
            out.append((k, at(*(episode.frame_time(i) for i in range(lo, start_index + 1)))))
            continue
        anchor, window = episode.frame_time(start_index), float(cfg.interjection_window_seconds)
        first, last = episode.frame_time(0), episode.frame_time(len(episode.timestamps) - 1)
        targets = [anchor] if n == 1 else [anchor - window / 2 + window / (n - 1) * i for i in range(n)]
        out.append((k, at(*(min(last, max(first, t)) for t in targets))))
    return out


def choose_boundaries(episode: EpisodeView, spans: tuple[Span, ...]) -> list[int]:
    """Seeded choice of up to N span indices (not the first) whose start is late enough."""
    cfg = episode.config.interjections
    eligible = [k for k, s in enumerate(spans) if k > 0 and s.start >= cfg.interjection_min_t]
    rng = episode.rng(InterjectionsModule.name)
    chosen = rng.sample(eligible, min(cfg.max_interjections_per_episode, len(eligible)))
    return sorted(chosen)


FIRST_FRAME = at(0.0, tolerance=float("inf"))  # the acknowledgement's frame: the episode's first


class InterjectionsModule(Module):
    """An acknowledgement at t0 and user cues on subtask boundaries, each with a spoken reply and a new plan."""

    name = "interjections"
    styles = frozenset({"interjection", SPEECH})
    anchored = {"plan": "interjection"}  # each interjection's plan row is this module's
    config_class = InterjectionsConfig
    requires = ("plan",)
    prompts = ("interjection_ack", "interjection_cue")

    def keyframes(self, episode: EpisodeView, config: InterjectionsConfig,
                  upstream: Mapping[str, Any] | None = None) -> dict[str, KeyframePolicy]:
        """The acknowledgement's frame (the first frame of the default camera), and once the plan module's
        spans are known, the frames of each cue's window up to its boundary."""
        plan: PlanResult | None = (upstream or {}).get("plan")
        camera = episode.default_camera
        if plan is None or not plan.spans:
            return {camera: FIRST_FRAME}
        return {camera: union(FIRST_FRAME, *(policy for _, policy in cue_windows(episode, plan.spans)))}

    async def run(self, ctx: EpisodeContext, upstream: Mapping[str, Any]) -> list[LanguageRow]:
        plan: PlanResult = upstream["plan"]
        task, spans = plan.task or ctx.task, plan.spans
        camera = ctx.default_camera
        rows: list[LanguageRow] = []

        first, (t0,) = await ctx.keyframes(camera, FIRST_FRAME)
        text = load_prompt("interjection_ack").render(task=task)
        (ack,) = await ctx.ask([user_turn(image_blocks(first[:1]), text)], [schemas.speech_schema()])
        rows.append(speech_atom(" ".join(ack["speech"].split()), t0))

        conversations, boundary_times = [], []
        for k, window in cue_windows(ctx, spans):
            frames, _ = await ctx.keyframes(camera, window)
            remaining = format_plan([s.text for s in spans[k:]])
            seconds = ctx.config.interjections.interjection_window_seconds
            text = load_prompt("interjection_cue").render(
                task=task, time=spans[k].start, completed=spans[k - 1].text, remaining_plan=remaining,
                window="the last moments before" if seconds is None else f"the {seconds:g} s around",
            )
            conversations.append(user_turn(image_blocks(frames), text))
            boundary_times.append(ctx.frame_time(spans[k].start_index))
        if conversations:
            schema = schemas.interjection_schema(ctx.config.plan.plan_max_steps)
            answers = await ctx.ask(conversations, [schema] * len(conversations))
            for t, answer in zip(boundary_times, answers):
                rows.append(LanguageRow("user", " ".join(answer["interjection"].split()), "interjection", t))
                rows.append(speech_atom(" ".join(answer["reply"].split()), t))
                steps = [s for s in answer["plan"] if str(s).strip()] or [spans[-1].text]
                rows.append(LanguageRow("assistant", format_plan(steps), "plan", t))
        return rows
