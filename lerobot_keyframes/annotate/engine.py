"""One episode through the modules, and many episodes in flight: the step every executor runs.

`annotate_rows` is the whole annotation step for a group of episode rows: each episode moves through
plan → interjections → vqa (→ motion) on its own, staged module by module (a re-run reuses what is staged
under the same key), while up to `episodes_in_flight` episodes run at once so an in-process engine behind
a `BatchingScheduler` gets full batches and a server gets many requests. `Annotator` (datasets.map), the
local run, Ray actors and HF Jobs shards all call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..vlm.errors import VlmRequestError
from ..vlm.jsonparse import bounded
from .config import AnnotateConfig
from .context import AnnotationError, CallStats, EpisodeContext
from .interjections import keyframes as keyframes_of_interjections
from .interjections import run_interjections
from .keyframes import EpisodeFrames, FrameStats, module_policies
from .motion import run_motion
from .plan import run_plan
from .staging import StagedModule, Staging
from .vqa import run_vqa

if TYPE_CHECKING:
    from ..frames import FrameProvider
    from ..vlm import VlmBackend

logger = logging.getLogger(__name__)

MODULES = ("plan", "interjections", "vqa", "motion")
IN_PROCESS_MAX_EPISODES = 64


@dataclass
class EpisodeOutcome:
    """One episode's result: what ran, what was reused, calls, staged modules and the assembled rows."""

    episode_index: int
    error: str | None = None
    error_module: str | None = None
    modules_run: dict[str, int] = field(default_factory=dict)
    modules_reused: dict[str, int] = field(default_factory=dict)
    stats: CallStats = field(default_factory=CallStats)
    frames: FrameStats = field(default_factory=FrameStats)
    staged: list[StagedModule] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def episodes_in_flight(config: AnnotateConfig, vlm: VlmBackend | None) -> int:
    """`--executor.episode_parallelism`, or by default enough episodes for the engine's batches to fill:
    twice the batch limit of an in-process engine (capped at 64), the client concurrency of a server."""
    if config.executor.episode_parallelism is not None:
        return max(1, config.executor.episode_parallelism)
    max_batch = getattr(vlm, "max_batch", None)
    if max_batch is not None:
        return max(8, min(IN_PROCESS_MAX_EPISODES, 2 * int(max_batch)))
    concurrency = getattr(getattr(vlm, "config", None), "client_concurrency", None)
    return max(8, int(concurrency or 8))


def assemble_rows(staged: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The episode's rows from all staged modules; an interjection's plan row replaces the plan module's
    row at the same time (one plan per frame, never two)."""
    interjection_plan_times = {
        r["timestamp"] for r in staged.get("interjections", []) if r.get("style") == "plan"
    }
    rows = []
    for module in MODULES:
        for row in staged.get(module, []):
            if module == "plan" and row.get("style") == "plan" and row["timestamp"] in interjection_plan_times:
                continue
            rows.append(row)
    return rows


async def annotate_episode(ctx: EpisodeContext, staging: Staging, keys: dict[str, str],
                           outcome: EpisodeOutcome, on_step: Callable[[str], None] | None = None) -> None:
    """plan → interjections → vqa → motion for one episode, each staged (or reused) under its key;
    `on_step(module)` after each module is staged or reused (progress counts these steps)."""
    cfg = ctx.config
    e = ctx.index
    declared = module_policies(ctx.episode, cfg, ctx.default_camera) if ctx.cameras else {}
    run, reused = Counter(), Counter()

    def keep_for(later: Sequence[str]) -> None:
        """Free the frames only earlier modules needed."""
        if ctx.frames is None:
            return
        keep: dict[str, list[float]] = {}
        for module in later:
            for cam, policy in declared.get(module, {}).items():
                keep.setdefault(cam, []).extend(float(t) for t in policy.timestamps(ctx.episode))
        ctx.frames.retain(keep)

    async def stage(module: str, produce: Callable[[], Any]) -> dict[str, Any]:
        if not cfg.force:
            staged = staging.lookup(e, module, keys[module])
            if staged is not None:
                reused[module] += 1
                if on_step is not None:
                    on_step(module)
                return staged.info
        try:
            rows, info = await produce()
        except VlmRequestError as exc:  # a transport failure after the retries fails this episode, not the run
            raise AnnotationError(str(exc), episode_index=e, module=module) from exc
        staging.write(e, module, keys[module], rows, info)
        run[module] += 1
        if on_step is not None:
            on_step(module)
        return info

    try:
        plan_info: dict[str, Any] | None = None
        if cfg.plan.enabled:
            plan_info = await stage("plan", lambda: run_plan(ctx))
        elif cfg.interjections.enabled or cfg.vqa.enabled:
            staged = staging.read(e, "plan")  # a disabled plan module may still have staged spans from earlier
            plan_info = staged.info if staged is not None else None
        if "interjections" in declared and plan_info:  # the cue windows are known now
            declared["interjections"] = keyframes_of_interjections(ctx.default_camera, ctx, plan_info["spans"])
        keep_for(["interjections", "vqa"])
        if cfg.interjections.enabled:
            if plan_info is None:
                raise AnnotationError("interjections need the plan module's spans: enable --plan.enabled or run "
                                      "it once", episode_index=e, module="interjections")
            info = plan_info

            async def interjections() -> tuple[list[dict[str, Any]], dict[str, Any]]:
                return await run_interjections(ctx, info), {}

            await stage("interjections", interjections)
        keep_for(["vqa"])
        if cfg.vqa.enabled:

            async def vqa() -> tuple[list[dict[str, Any]], dict[str, Any]]:
                return await run_vqa(ctx, plan_info), {}

            await stage("vqa", vqa)
        keep_for([])
        if cfg.motion.enabled:

            async def motion() -> tuple[list[dict[str, Any]], dict[str, Any]]:
                return await asyncio.to_thread(run_motion, ctx), {}

            await stage("motion", motion)
    finally:
        outcome.modules_run, outcome.modules_reused = dict(run), dict(reused)
        if ctx.frames is not None:
            outcome.frames = ctx.frames.stats
            ctx.frames = None  # the frames go with the episode


async def annotate_rows(
    rows: Sequence[dict[str, Any]],
    *,
    config: AnnotateConfig,
    vlm: VlmBackend | None,
    provider: FrameProvider,
    keys: dict[str, str],
    staging: Staging,
    model_family: str,
    on_done: Callable[[EpisodeOutcome], None] | None = None,
    on_step: Callable[[int, str], None] | None = None,
) -> list[EpisodeOutcome]:
    """Annotate episode rows concurrently (episodes in flight bounded); one outcome per row, in order.

    A row's keyframe columns (`AnnotationKeyframes`) are used as its frames; anything else is decoded
    through `provider`. With `on_error="skip"` a failed episode is reported in its outcome and the
    others go on; with "stop" the first failure is raised (after staging its error). `vlm` answers the
    modules' questions (None only when no enabled module asks the model). `on_step(episode, module)` is
    called as each module of each episode is staged or reused, `on_done(outcome)` as each episode ends.
    """
    in_flight = episodes_in_flight(config, vlm)
    episodes = asyncio.Semaphore(in_flight)
    requests = asyncio.Semaphore(max(config.executor.max_requests_in_flight, in_flight))
    caller = getattr(vlm, "caller", None)

    async def one(row: dict[str, Any]) -> EpisodeOutcome:
        e = int(row["episode_index"])
        outcome = EpisodeOutcome(e)
        async with episodes:
            ctx = EpisodeContext(episode=row, config=config, provider=provider, vlm=vlm,
                                 requests=requests, stats=outcome.stats, model_family=model_family,
                                 frames=EpisodeFrames.for_row(row, provider))
            registered = caller() if caller is not None else contextlib.nullcontext()
            try:
                async with registered:
                    await annotate_episode(ctx, staging, keys, outcome,
                                           None if on_step is None else lambda module: on_step(e, module))
            except AnnotationError as exc:
                staging.write_error(e, exc.module, keys.get(exc.module, ""), str(exc))
                outcome.error, outcome.error_module = str(exc), exc.module
                logger.error("%s", exc)
                if exc.raw:
                    logger.debug("raw model answer: %s", bounded(exc.raw, 2000))
                if config.on_error == "stop":
                    raise
        outcome.staged = [s for m in MODULES if (s := staging.lookup(e, m, keys[m])) is not None]
        if outcome.error is None:  # only entries made under this run's keys, never a stale or disabled module's
            outcome.rows = assemble_rows({s.module: s.rows for s in outcome.staged if getattr(config, s.module).enabled})
        if on_done is not None:
            on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(one(dict(row)) for row in rows)))
