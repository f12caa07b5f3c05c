"""One episode through the modules, and many episodes in flight: the step every executor runs.

`annotate_rows` is the whole annotation step for a group of episode rows: each episode moves through the
enabled modules in the registry's order (`modules.registry`: plan → interjections → vqa → motion, then
a user's own) on its own, staged module by module (a re-run reuses what is staged under the same key),
while up to `episodes_in_flight` episodes run at once so an in-process engine behind a `BatchingScheduler`
gets full batches and a server gets many requests. `Annotator` (datasets.map), the local run, Ray actors and
HF Jobs shards all call it. No module is named here: each declares what it needs (`modules.base.Module`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..language.rows import LanguageRow, as_row
from ..vlm.errors import VlmRequestError
from ..vlm.jsonparse import bounded
from .config import AnnotateConfig
from .context import AnnotationError, CallStats, EpisodeContext
from .frame_store import EpisodeFrames, FrameStats
from .modules.base import SPEECH, Module, ModuleOutput
from .modules.registry import RunModules, run_modules
from .run.output import assemble_rows
from .run.plan import RunPlan
from .run.staging import StagedModule, Staging

if TYPE_CHECKING:
    from ..frames import FrameProvider
    from ..vlm import VlmBackend

logger = logging.getLogger(__name__)

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
    rows: list[LanguageRow] = field(default_factory=list)


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


def checked_rows(module: Module, out: Sequence[LanguageRow | Mapping[str, Any]] | ModuleOutput,
                 episode: int) -> tuple[list[LanguageRow], Any]:
    """(rows, result) of what `module.run` returned; a row of a style the module does not declare fails the
    episode (the validator checks everything else about a row when it is written)."""
    rows, result = (out.rows, out.result) if isinstance(out, ModuleOutput) else (out, None)
    if not isinstance(rows, (list, tuple)):
        raise AnnotationError(f"run() returned {type(rows).__name__}, not a list of LanguageRow (or a ModuleOutput)",
                              episode_index=episode, module=module.name)
    declared = set(module.styles) | set(module.anchored)
    checked = []
    for row in rows:
        if not isinstance(row, (LanguageRow, Mapping)):
            raise AnnotationError(f"run() returned a row of type {type(row).__name__}, not a LanguageRow",
                                  episode_index=episode, module=module.name)
        row = as_row(row)
        style = SPEECH if row.style is None else row.style
        if style not in declared:
            raise AnnotationError(f"a row of style {style!r} at {row.timestamp} s, which the module does not declare "
                                  f"(its styles: {sorted(declared)})", episode_index=episode, module=module.name)
        checked.append(row)
    return checked, result


async def annotate_episode(ctx: EpisodeContext, staging: Staging, keys: dict[str, str],
                           outcome: EpisodeOutcome, on_step: Callable[[str], None] | None = None,
                           modules: RunModules | None = None) -> None:
    """The enabled modules of one episode in run order, each staged (or reused) under its key; each gets the
    results of the modules it requires or uses (a disabled one's staged result, if any). `on_step(module)`
    after each module is staged or reused (progress counts these steps)."""
    cfg = ctx.config
    modules = modules or run_modules(cfg)
    enabled = modules.enabled
    e = ctx.index
    run, reused = Counter(), Counter()
    results: dict[str, Any] = {}  # module -> its result, for the modules after it

    def upstream_of(m: Module) -> dict[str, Any]:
        for name in (*m.requires, *m.uses):
            if name not in results and not modules.get(name).enabled(cfg):
                staged = staging.read(e, name)  # a disabled module may still have staged its result earlier
                results[name] = modules.get(name).load_result(staged.info) if staged is not None else None
        return {name: results[name] for name in (*m.requires, *m.uses) if results.get(name) is not None}

    def policies(m: Module, upstream: Mapping[str, Any] | None = None) -> dict[str, Any]:
        ctx.module = m.name
        return m.keyframes(ctx, modules.config_of(m), upstream) if ctx.cameras else {}

    declared = {m.name: policies(m) for m in enabled}

    def keep_for(later: Sequence[Module]) -> None:
        """Free the frames only earlier modules needed (the later ones' declared frames, upstream known, stay)."""
        if ctx.frames is None:
            return
        keep: dict[str, list[float]] = {}
        for m in later:
            if (upstream := upstream_of(m)) and m.name not in results:
                declared[m.name] = policies(m, upstream)  # frames known once earlier answers are in
            for cam, policy in declared.get(m.name, {}).items():
                keep.setdefault(cam, []).extend(float(t) for t in policy.timestamps(ctx.episode))
        ctx.frames.retain(keep)

    async def stage(m: Module, upstream: Mapping[str, Any]) -> Any:
        ctx.module = m.name
        if not cfg.force:
            staged = staging.lookup(e, m.name, keys[m.name])
            if staged is not None:
                reused[m.name] += 1
                if on_step is not None:
                    on_step(m.name)
                return m.load_result(staged.info)
        try:
            rows, result = checked_rows(m, await m.run(ctx, upstream), e)
        except VlmRequestError as exc:  # a transport failure after the retries fails this episode, not the run
            raise AnnotationError(str(exc), episode_index=e, module=m.name) from exc
        except AnnotationError:
            raise
        except Exception as exc:
            if type(m).__module__.startswith(f"{__package__.partition('.')[0]}."):
                raise  # a built-in module's failure is this package's bug: its traceback is wanted
            # a user module's bug fails this episode like any other failure (--on_error), named, no traceback
            logger.debug("episode %d: module %s raised", e, m.name, exc_info=True)
            raise AnnotationError(f"{type(m).__module__}.{type(m).__qualname__}.run raised "
                                  f"{type(exc).__name__}: {exc} (-vv shows its traceback)",
                                  episode_index=e, module=m.name) from exc
        staging.write(e, m.name, keys[m.name], rows, m.save_result(result) if result is not None else {})
        run[m.name] += 1
        if on_step is not None:
            on_step(m.name)
        return result

    try:
        for k, m in enumerate(enabled):
            upstream = upstream_of(m)
            missing = [name for name in m.requires if name not in upstream]
            if missing:
                raise AnnotationError(f"it needs the result of module {missing[0]!r}: enable --{missing[0]}.enabled "
                                      "or run it once", episode_index=e, module=m.name)
            if k:
                keep_for(enabled[k:])
            results[m.name] = await stage(m, upstream)
        keep_for([])
    finally:
        outcome.modules_run, outcome.modules_reused = dict(run), dict(reused)
        if ctx.frames is not None:
            outcome.frames = ctx.frames.stats
            ctx.frames = None  # the frames go with the episode


async def annotate_rows(
    rows: Sequence[dict[str, Any]],
    *,
    plan: RunPlan,
    vlm: VlmBackend | None,
    provider: FrameProvider,
    staging: Staging,
    model_family: str,
    on_done: Callable[[EpisodeOutcome], None] | None = None,
    on_step: Callable[[int, str], None] | None = None,
) -> list[EpisodeOutcome]:
    """Annotate episode rows concurrently (episodes in flight bounded); one outcome per row, in order, staged
under the plan's keys (its modules, in run order).

    A row's keyframe columns (`AnnotationKeyframes`) are used as its frames; anything else is decoded
    through `provider`. With `on_error="skip"` a failed episode is reported in its outcome and the
    others go on; with "stop" the first failure is raised (after staging its error). `vlm` answers the
    modules' questions (None only when no enabled module asks the model). `on_step(episode, module)` is
    called as each module of each episode is staged or reused, `on_done(outcome)` as each episode ends.
    """
    config, keys, modules = plan.config, plan.keys, plan.modules
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
                                           None if on_step is None else lambda module: on_step(e, module), modules)
            except AnnotationError as exc:
                staging.write_error(e, exc.module, keys.get(exc.module, ""), str(exc))
                outcome.error, outcome.error_module = str(exc), exc.module
                logger.error("%s", exc)
                if exc.raw:
                    logger.debug("raw model answer: %s", bounded(exc.raw, 2000))
                if config.on_error == "stop":
                    raise
        outcome.staged = [s for m in modules.names if (s := staging.lookup(e, m, keys[m])) is not None]
        if outcome.error is None:  # only entries made under this run's keys, never a stale or disabled module's
            enabled = set(modules.enabled_names)
            outcome.rows = assemble_rows({s.module: s.rows for s in outcome.staged if s.module in enabled}, modules.all)
        if on_done is not None:
            on_done(outcome)
        return outcome

    return list(await asyncio.gather(*(one(dict(row)) for row in rows)))
