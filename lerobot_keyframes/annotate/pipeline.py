"""The annotation run: every episode flows plan → interjections → vqa on its own, staged as it goes.

There is no barrier between modules across the dataset: a bounded number of episodes is in flight, each
moving to its next module as soon as its previous one is staged, so the backend always has work. A
re-run reuses what is staged under the same key (resume); `force` recomputes. Rows are validated and
written once, at the end, from staging.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import __version__
from .config import AnnotateConfig, config_hash
from .context import AnnotationError, CallStats, EpisodeContext
from .interjections import PROMPTS as INTERJECTION_PROMPTS
from .interjections import run_interjections
from .motion import run_motion
from .plan import PROMPTS as PLAN_PROMPTS
from .plan import run_plan
from .prompting import prompt_hashes
from .staging import Staging
from .vqa import PROMPTS as VQA_PROMPTS
from .vqa import detect_family, run_vqa

logger = logging.getLogger(__name__)

MODULES = ("plan", "interjections", "vqa", "motion")


@dataclass
class AnnotateResult:
    """What a run did: where the output is, per-episode failures, rows per style, model calls, time."""

    output_root: Path
    staging_dir: Path
    episodes: list[int]
    failures: dict[int, str] = field(default_factory=dict)
    rows_per_style: dict[str, int] = field(default_factory=dict)
    modules_run: Counter = field(default_factory=Counter)
    modules_reused: Counter = field(default_factory=Counter)
    stats: CallStats = field(default_factory=CallStats)
    seconds: float = 0.0
    validation: Any = None
    provenance: dict[str, Any] = field(default_factory=dict)
    push: Any = None
    frames: dict[str, int] = field(default_factory=dict)  # decoded / served from the frame cache (local engine)
    quality: dict[int, list[Any]] = field(default_factory=dict)  # quality.QualityFinding per episode (before the run)
    notes: list[str] = field(default_factory=list)  # e.g. grounding: which episodes were snapped, and why not
    grounding: dict[str, Any] = field(default_factory=dict)  # per episode: boundaries moved to robot events

    def summary(self) -> str:
        ok = len(self.episodes) - len(self.failures)
        lines = [
            f"annotated {ok}/{len(self.episodes)} episodes in {self.seconds:.1f} s -> {self.output_root}",
            f"model calls {self.stats.calls} (rejected answers {self.stats.failures}), "
            f"tokens in/out {self.stats.prompt_tokens}/{self.stats.completion_tokens}",
            "modules run " + ", ".join(f"{m}={n}" for m, n in sorted(self.modules_run.items()))
            + "; reused from staging " + ", ".join(f"{m}={n}" for m, n in sorted(self.modules_reused.items())),
            "rows per style " + ", ".join(f"{s}={n}" for s, n in sorted(self.rows_per_style.items())),
        ]
        if self.frames:
            lines.append(f"frames decoded {self.frames['decoded']}, served from the frame cache {self.frames['cached']}")
        if self.quality:
            from ..quality import findings_summary

            lines.extend(findings_summary(self.quality))
        lines.extend(self.notes)
        if self.validation is not None:
            lines.append(f"validation: {getattr(self.validation, 'summary', lambda: self.validation)()}")
        if self.push is not None:
            lines.append(f"pushed: {self.push.summary() if hasattr(self.push, 'summary') else self.push}")
        for e, reason in sorted(self.failures.items()):
            lines.append(f"FAILED episode {e}: {reason}")
        return "\n".join(lines)


def module_keys(config: AnnotateConfig, vlm: Any) -> dict[str, str]:
    """Staging keys: module config + model identity + prompts + seed; later modules include the plan key."""
    identity = {
        "model_id": getattr(vlm, "model_id", None),
        "revision": getattr(vlm, "revision", None),
        "temperature": getattr(vlm, "temperature", None),
        "top_p": getattr(vlm, "top_p", None),
        "seed": getattr(vlm, "seed", None),
        "max_new_tokens": getattr(vlm, "max_new_tokens", None),
        "chat_template_kwargs": getattr(vlm, "chat_template_kwargs", None),
    }
    plan = config_hash("plan", config.plan, identity, prompt_hashes(PLAN_PROMPTS), config.seed,
                       (config.motion.signal, config.motion.gripper_index))  # the grounding signal
    return {
        "plan": plan,
        "interjections": config_hash(
            "interjections", config.interjections, identity, prompt_hashes(INTERJECTION_PROMPTS), config.seed, plan
        ),
        "vqa": config_hash("vqa", config.vqa, identity, prompt_hashes(VQA_PROMPTS), config.seed, plan),
        "motion": config_hash("motion", config.motion),
    }


async def _annotate_episode(
    ctx: EpisodeContext, staging: Staging, keys: dict[str, str], result: AnnotateResult, bars: dict[str, tqdm]
) -> None:
    cfg = ctx.config
    e = ctx.index

    async def stage(module: str, produce) -> dict[str, Any]:
        if not cfg.force:
            staged = staging.lookup(e, module, keys[module])
            if staged is not None:
                result.modules_reused[module] += 1
                bars[module].update(1)
                return staged.info
        rows, info = await produce()
        staging.write(e, module, keys[module], rows, info)
        result.modules_run[module] += 1
        bars[module].update(1)
        return info

    async def plan():
        return await run_plan(ctx)

    plan_info: dict[str, Any] | None = None
    if cfg.plan.enabled:
        plan_info = await stage("plan", plan)
    elif cfg.interjections.enabled or cfg.vqa.enabled:
        staged = staging.read(e, "plan")  # a disabled plan module may still have staged spans from earlier
        plan_info = staged.info if staged is not None else None
    if cfg.interjections.enabled:
        if plan_info is None:
            raise AnnotationError("interjections need the plan module's spans: enable --plan.enabled or run it once",
                                  episode_index=e, module="interjections")
        info = plan_info

        async def interjections():
            return await run_interjections(ctx, info), {}

        await stage("interjections", interjections)
    if cfg.vqa.enabled:

        async def vqa():
            return await run_vqa(ctx, plan_info), {}

        await stage("vqa", vqa)
    if cfg.motion.enabled:

        async def motion():
            return await asyncio.to_thread(run_motion, ctx), {}

        await stage("motion", motion)


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


async def _run_all(contexts: list[EpisodeContext], staging: Staging, keys: dict[str, str], result: AnnotateResult,
                   config: AnnotateConfig) -> None:
    episodes_sem = asyncio.Semaphore(max(1, config.executor.episode_parallelism))
    enabled = [m for m in MODULES if getattr(config, m).enabled]
    bars = {m: tqdm(total=len(contexts), desc=f"{m:<13}", unit="ep", disable=m not in enabled) for m in MODULES}

    async def one(ctx: EpisodeContext) -> None:
        async with episodes_sem:
            try:
                await _annotate_episode(ctx, staging, keys, result, bars)
            except AnnotationError as exc:
                staging.write_error(ctx.index, exc.module, keys.get(exc.module, ""), str(exc))
                result.failures[ctx.index] = str(exc)
                logger.error("%s", exc)
                if exc.raw:
                    logger.debug("raw model answer: %s", exc.raw)
                if config.on_error == "stop":
                    raise

    try:
        await asyncio.gather(*(one(ctx) for ctx in contexts))
    finally:
        for bar in bars.values():
            bar.close()


def default_output_root(config: AnnotateConfig, source_root: Path) -> Path:
    if config.in_place:
        return source_root
    if config.out is not None:
        return Path(config.out)
    name = (config.repo_id or source_root.name).replace("/", "__")
    return Path.cwd() / f"{name}_annotated"


def default_staging_dir(out_root: Path) -> Path:
    """Beside the output root (`<out>.staging`), so rewriting the output never touches staged work."""
    return out_root.with_name(out_root.name + ".staging")


@dataclass
class PreparedRun:
    """What every engine needs before the first episode: the source, its episode rows, output and staging."""

    source: Any
    rows: list[dict[str, Any]]
    out_root: Path
    staging: Staging
    result: AnnotateResult


def prepare_run(config: AnnotateConfig, camera_key: str | None = None) -> PreparedRun:
    """Resolve the source, read the episode table, fetch the videos needed and open staging.

    A `camera_key` (`--vlm.camera_key`) that is not a camera of the dataset is an error here, before any
    work, never a silent switch to another camera."""
    from ..dataset import load_episodes
    from ..dataset.source import resolve_source

    source = resolve_source(config.root or config.repo_id, revision=config.revision)
    episodes = load_episodes(source.root, episodes=config.only_episodes)
    cameras = sorted({c["key"] for r in episodes for c in r["cameras"]})
    if camera_key and camera_key not in cameras:
        raise ValueError(f"--vlm.camera_key={camera_key!r} is not a camera of {source.root}; it has {cameras}")
    if source.repo_id is not None:  # meta + data are local now; fetch only the videos of these episodes
        source.fetch_files(sorted({c["path"] for r in episodes for c in r["cameras"] if c["storage"] == "video"}))
    out_root = default_output_root(config, source.root)
    staging_dir = Path(config.staging_dir) if config.staging_dir else default_staging_dir(out_root)
    rows = episodes.to_list()
    result = AnnotateResult(output_root=out_root, staging_dir=staging_dir, episodes=[r["episode_index"] for r in rows])
    return PreparedRun(source, rows, out_root, Staging(staging_dir), result)


def finish_run(run: PreparedRun, config: AnnotateConfig, vlm: Any, keys: dict[str, str], started: float) -> AnnotateResult:
    """Assemble every finished episode's rows from staging, then validate and write them once."""
    result, staging = run.result, run.staging
    finished = [e for e in result.episodes if e not in result.failures]
    per_episode = {e: assemble_rows(staging.rows(e)) for e in finished}
    if config.plan.enabled:
        from .grounding import grounding_provenance, grounding_summary

        infos = {e: getattr(staging.read(e, "plan"), "info", None) for e in finished}
        result.notes.extend(grounding_summary(infos))
        result.grounding = grounding_provenance(infos)
    result.rows_per_style = dict(Counter(str(r.get("style")) for rs in per_episode.values() for r in rs))
    result.provenance = provenance(config, vlm, result, keys)
    if not config.push_staging_only:  # a shard job leaves writing to `merge`
        from .output import validate_and_write

        result.validation = validate_and_write(run.source.root, run.out_root, per_episode, config, result.provenance)
    if config.push_to_hub and getattr(result.validation, "ok", True):
        from .publish import publish

        result.push = publish(config, result, run.source.revision)
    result.seconds = time.perf_counter() - started
    return result


def run_annotation(config: AnnotateConfig, vlm: Any, *, backend: Any = None, provider: Any = None) -> AnnotateResult:
    """Annotate a dataset end to end: read, decode, ask, stage, validate, write. Returns a summary.

    With `config.executor.engine == "ray"` the run goes to `ray_engine.run_annotation_ray` (config.ray).
    """
    if config.executor.engine == "ray":
        from .ray_engine import run_annotation_ray

        factory = (lambda: backend) if backend is not None else None
        return run_annotation_ray(config, vlm, backend_factory=factory)
    started = time.perf_counter()
    run = prepare_run(config, getattr(vlm, "camera_key", None))
    rows, staging, result = run.rows, run.staging, run.result

    if provider is None:
        from ..frames import make_frame_provider

        provider = make_frame_provider(rows, backend=config.frame_backend, cache_bytes=config.frame_cache_mb << 20)
    if config.quality.enabled:  # before any model call; --quality.skip_bad_episodes leaves flagged episodes out
        from ..quality import check_episodes

        result.quality = check_episodes(rows, provider, config.quality, signal=config.motion.signal,
                                        gripper_index=config.motion.gripper_index)
        if config.quality.skip_bad_episodes:
            result.failures.update({e: f"skipped (--quality.skip_bad_episodes): {f[0]}" for e, f in result.quality.items()})
            rows = [r for r in rows if r["episode_index"] not in result.quality]
    if backend is None and any(getattr(config, m).enabled for m in ("plan", "interjections", "vqa")):
        from ..vlm import make_backend

        backend = make_backend(vlm)
    family = detect_family(getattr(vlm, "model_id", None))
    keys = module_keys(config, vlm)
    requests = None

    async def main() -> None:
        nonlocal requests
        requests = asyncio.Semaphore(max(1, config.executor.max_requests_in_flight))
        contexts = [
            EpisodeContext(episode=row, config=config, provider=provider, backend=backend, requests=requests,
                           stats=result.stats, model_family=family)
            for row in rows
        ]
        try:
            await _run_all(contexts, staging, keys, result, config)
        finally:
            if backend is not None and hasattr(backend, "aclose"):
                await backend.aclose()  # connections kept across the run's calls belong to this loop

    asyncio.run(main())
    stats = getattr(provider, "stats", None)
    if callable(stats):
        got = stats()
        result.frames = {"decoded": sum(got.decoded_frames.values()), "cached": got.cache.hits}
    return finish_run(run, config, vlm, keys, started)


def provenance(config: AnnotateConfig, vlm: Any, result: AnnotateResult, keys: dict[str, str]) -> dict[str, Any]:
    """What produced these annotations: for the dataset card and for anyone reading the output later."""
    return {
        "package": "lerobot_keyframes",
        "package_version": __version__,
        "model_id": getattr(vlm, "model_id", None),
        "model_revision": getattr(vlm, "revision", None),
        "backend": getattr(vlm, "backend", None),
        "sampling": {k: getattr(vlm, k, None) for k in ("temperature", "top_p", "seed", "max_new_tokens")},
        "prompt_hashes": prompt_hashes(PLAN_PROMPTS + INTERJECTION_PROMPTS + VQA_PROMPTS),
        "module_keys": keys,
        "modules": [m for m in MODULES if getattr(config, m).enabled],
        "episodes": len(result.episodes) - len(result.failures),
        "rows_per_style": result.rows_per_style,
        "quality": {str(e): [f.as_dict() for f in fs] for e, fs in sorted(result.quality.items())},
        "notes": list(result.notes),
        "grounding": result.grounding,
        "seed": config.seed,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
