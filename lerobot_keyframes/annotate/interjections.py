"""`interjections` module: a spoken acknowledgement at the first frame, then user cues on subtask boundaries.

Each cue is an `interjection` event, a `say` speech atom with the reply, and a `plan` row at the same
frame whose steps take the cue into account (it replaces the plan module's row at that time).
"""

from __future__ import annotations

from typing import Any

from . import schemas
from .context import EpisodeContext
from .plan import _user
from .prompting import load_prompt
from .rows import event_row, persistent_row, speech_row
from .spans import format_plan

MODULE = "interjections"
PROMPTS = ["interjection_ack", "interjection_cue"]


def keyframes(camera: str, ctx: EpisodeContext | None = None,
              spans: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The acknowledgement's frame (the first frame of the default camera), and once the plan module's
    spans are known, the frames of each cue's window up to its boundary."""
    from ..frames.policies import at, union

    first = at(0.0, tolerance=float("inf"))
    if ctx is None or not spans:
        return {camera: first}
    return {camera: union(first, *(policy for _, policy in cue_windows(ctx, spans)))}


def cue_windows(ctx: EpisodeContext, spans: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """(span index, policy of the window's frames) for each chosen boundary.

    Without `interjection_window_seconds`: the `interjection_window_frames` frames up to the boundary.
    With it, lerobot-annotate 0.6.1's window: that many frames evenly spread over the given seconds
    centred on the boundary (the end of the previous subtask and the start of the next), clamped to
    the episode, each snapped to the nearest frame, repeats dropped.
    """
    from ..frames.policies import at

    cfg = ctx.config.interjections
    n = max(1, cfg.interjection_window_frames)
    out = []
    for k in choose_boundaries(ctx, spans):
        start_index = int(spans[k]["start_index"])
        if cfg.interjection_window_seconds is None:
            lo = max(0, start_index - n + 1)
            out.append((k, at(*(ctx.frame_time(i) for i in range(lo, start_index + 1)))))
            continue
        anchor, window = ctx.frame_time(start_index), float(cfg.interjection_window_seconds)
        first, last = ctx.frame_time(0), ctx.frame_time(len(ctx.timestamps) - 1)
        targets = [anchor] if n == 1 else [anchor - window / 2 + window / (n - 1) * i for i in range(n)]
        out.append((k, at(*(min(last, max(first, t)) for t in targets))))
    return out


def choose_boundaries(ctx: EpisodeContext, spans: list[dict[str, Any]]) -> list[int]:
    """Seeded choice of up to N span indices (not the first) whose start is late enough."""
    cfg = ctx.config.interjections
    eligible = [k for k, s in enumerate(spans) if k > 0 and s["start"] >= cfg.interjection_min_t]
    rng = ctx.rng(MODULE)
    chosen = rng.sample(eligible, min(cfg.max_interjections_per_episode, len(eligible)))
    return sorted(chosen)


async def run_interjections(ctx: EpisodeContext, plan_info: dict[str, Any]) -> list[dict[str, Any]]:
    task = plan_info.get("task") or ctx.task
    spans = plan_info["spans"]
    camera = ctx.default_camera
    rows: list[dict[str, Any]] = []

    first, (t0,) = await ctx.keyframes(MODULE, camera, keyframes(camera)[camera])
    text = load_prompt("interjection_ack").render(task=task)
    (ack,) = await ctx.ask(MODULE, [_user([{"type": "image", "image": first[0]}], text)], [schemas.speech_schema()])
    rows.append(speech_row(" ".join(ack["speech"].split()), t0))

    conversations, boundary_times = [], []
    for k, window in cue_windows(ctx, spans):
        frames, _ = await ctx.keyframes(MODULE, camera, window)
        remaining = format_plan([s["text"] for s in spans[k:]])
        seconds = ctx.config.interjections.interjection_window_seconds
        text = load_prompt("interjection_cue").render(
            task=task, time=spans[k]["start"], completed=spans[k - 1]["text"], remaining_plan=remaining,
            window="the last moments before" if seconds is None else f"the {seconds:g} s around",
        )
        conversations.append(_user([{"type": "image", "image": im} for im in frames], text))
        boundary_times.append(ctx.frame_time(int(spans[k]["start_index"])))
    if conversations:
        answers = await ctx.ask(MODULE, conversations, [schemas.interjection_schema(ctx.config.plan.plan_max_steps)] * len(conversations))
        for t, answer in zip(boundary_times, answers):
            rows.append(event_row("interjection", " ".join(answer["interjection"].split()), t, role="user"))
            rows.append(speech_row(" ".join(answer["reply"].split()), t))
            steps = [s for s in answer["plan"] if str(s).strip()] or [spans[-1]["text"]]
            rows.append(persistent_row("plan", format_plan(steps), t))
    return rows
