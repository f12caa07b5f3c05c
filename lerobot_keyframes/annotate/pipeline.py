"""The annotation run: read the source, run the `Annotator` step over the episode table, write once.

`run_annotation` is `datasets.map(Annotator(...))` over the episode table plus what a run needs around
it: the source resolved and checked, one engine (in-process engines behind a `BatchingScheduler`), one
frame provider, staging for resume, and the validated write of the mapped dataset's rows. There is no
barrier between modules across the dataset: the episodes in flight each move to their next module as
soon as the previous one is staged, so the engine always has work.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from .config import AnnotateConfig
from .context import CallStats
from .engine import assemble_rows
from .keys import episodes_inputs, module_keys, source_identity
from .modules.registry import run_modules
from .staging import RunLock, Staging

if TYPE_CHECKING:
    from datasets import Dataset

    from ..dataset.source import ResolvedSource
    from ..frames import FrameProvider
    from ..hub import PushResult
    from ..language import LanguageRow, ValidationReport
    from ..quality import QualityFinding
    from ..vlm import VlmBackend, VlmConfig
    from ..vlm.batching import BatchStats

logger = logging.getLogger(__name__)

__all__ = ["AnnotateResult", "PreparedRun", "assemble_rows", "finish_run", "module_keys",
           "prepare_run", "run_annotation", "write_annotations"]


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
    validation: ValidationReport | None = None  # None: not validated (a shard job leaves it to `merge`)
    provenance: dict[str, Any] = field(default_factory=dict)
    push: PushResult | str | None = None  # the push, or a shard job's staging commit
    frames: dict[str, int] = field(default_factory=dict)  # decoded / from keyframe columns / shared by modules
    batches: BatchStats | None = None  # BatchStats of an in-process engine: conversations per engine call
    rows_kept: dict[str, int] = field(default_factory=dict)  # existing rows per style the run kept
    rows_replaced: dict[str, int] = field(default_factory=dict)  # existing rows per style it replaced
    rows_added: dict[str, int] = field(default_factory=dict)  # new rows per style it wrote
    quality: dict[int, list[QualityFinding]] = field(default_factory=dict)  # findings per episode (before the run)
    skipped: dict[int, str] = field(default_factory=dict)  # episodes --quality.skip_bad_episodes left out, and why
    notes: list[str] = field(default_factory=list)  # e.g. grounding: which episodes were snapped, and why not
    # provenance entries of the modules (`Module.summarize`; plan: `grounding`, boundaries moved to robot events)
    reports: dict[str, Any] = field(default_factory=dict)

    @property
    def grounding(self) -> dict[str, Any]:
        """Per episode: the subtask boundaries moved to robot events (the plan module's report)."""
        return self.reports.get("grounding", {})

    def summary(self) -> str:
        """A few lines in plain words: what was annotated, by which module, how many rows of each kind."""
        ok = len(self.episodes) - len(self.failures)
        lines = [f"annotated {ok} of {len(self.episodes)} episodes in {self.seconds:.1f} s -> {self.output_root}"]
        modules = []
        for m in sorted(set(self.modules_run) | set(self.modules_reused)):
            ran, reused = self.modules_run.get(m, 0), self.modules_reused.get(m, 0)
            total = ran + reused
            modules.append(f"{m} {total} episode{'s' if total != 1 else ''}"
                           + (f" ({reused} from staging)" if reused else ""))
        lines.append("modules: " + (", ".join(modules) if modules else "none ran"))
        named = {("speech" if s in (None, "None") else str(s)): n for s, n in self.rows_per_style.items()}
        lines.append("rows: " + (", ".join(f"{s} {n}" for s, n in sorted(named.items())) if named else "none"))
        if self.stats.calls:
            rejected = f", {self.stats.failures} answers rejected" if self.stats.failures else ""
            lines.append(f"model calls {self.stats.calls}{rejected}; tokens {self.stats.prompt_tokens} in, "
                         f"{self.stats.completion_tokens} out")
        if self.rows_kept or self.rows_replaced or self.rows_added:
            lines.append("existing rows kept " + (", ".join(f"{s}={n}" for s, n in sorted(self.rows_kept.items()))
                                                  or "none") + "; replaced " +
                         (", ".join(f"{s}={n}" for s, n in sorted(self.rows_replaced.items())) or "none") +
                         f"; rows added {sum(self.rows_added.values())}")
        if self.frames.get("decoded") or self.frames.get("from_row"):
            lines.append(f"frames decoded {self.frames.get('decoded', 0)}, taken from keyframe columns "
                         f"{self.frames.get('from_row', 0)}, shared between modules {self.frames.get('reused', 0)}")
        if self.batches is not None and self.batches.calls:
            lines.append(f"engine batches: {self.batches.summary()}")
        if self.quality:
            from ..quality import findings_summary

            lines.extend(findings_summary(self.quality))
        lines.extend(f"skipped episode {e}: {why}" for e, why in sorted(self.skipped.items()))
        lines.extend(self.notes)
        if self.validation is not None:
            lines.append(f"validation: {getattr(self.validation, 'summary', lambda: self.validation)()}")
        if self.push is not None:
            lines.append(f"pushed: {self.push.summary() if hasattr(self.push, 'summary') else self.push}")
        for e, reason in sorted(self.failures.items()):
            lines.append(f"FAILED episode {e}: {reason}")
        return "\n".join(lines)


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

    source: ResolvedSource
    episodes: Dataset  # the episode table, what the Annotator maps over
    rows: list[dict[str, Any]]  # the same table as Python rows (read once)
    out_root: Path
    staging: Staging
    result: AnnotateResult
    lock: RunLock | None = None


def prepare_run(config: AnnotateConfig, camera_key: str | None = None,
                vlm_config: VlmConfig | None = None) -> PreparedRun:
    """Resolve the source, read the episode table, fetch the videos needed and open staging.

    A `camera_key` (`--vlm.camera_key`) that is not a camera of the dataset is an error here, before any
    work, never a silent switch to another camera. `vlm_config`, when given, is checked too (extras, model)."""
    from ..dataset.source import resolve_source

    source = resolve_source(config.root or config.repo_id, revision=config.revision)
    from .preflight import preflight

    preflight(config, vlm_config, source)  # locations, Hub target, privacy, extras: before any decode or model call
    out_root = default_output_root(config, source.root)
    staging_dir = Path(config.staging_dir) if config.staging_dir else default_staging_dir(out_root)
    lock = RunLock(out_root, staging_dir).acquire()  # one run per output: a second one fails here, at once
    try:
        return _prepare_locked(config, camera_key, source, out_root, staging_dir, lock)
    except BaseException:
        lock.release()
        raise


def _prepare_locked(config: AnnotateConfig, camera_key: str | None, source: ResolvedSource, out_root: Path, staging_dir: Path,
                    lock: RunLock) -> PreparedRun:
    from ..dataset import load_episodes
    from ..dataset.episodes import require_episodes
    from ..language.writer import recover_interrupted_write
    from .output import check_output_source

    check_output_source(out_root, config)  # an --out holding another dataset's annotated copy: refused now
    for root in {source.root, out_root} if source.repo_id is None else {out_root}:
        if root.is_dir():
            recover_interrupted_write(root)  # an in-place write killed midway is finished or undone first
    episodes = load_episodes(source.root, episodes=config.only_episodes)
    require_episodes(len(episodes), source.root, config.only_episodes, "--only_episodes")
    cameras = sorted({c["key"] for r in episodes for c in r["cameras"]})
    if camera_key and camera_key not in cameras:
        raise ValueError(f"--vlm.camera_key={camera_key!r} is not a camera of {source.root}; it has {cameras}")
    if source.repo_id is not None and config.video_access == "download":  # else read by byte range when decoded
        source.fetch_files(sorted({c["path"] for r in episodes for c in r["cameras"] if c["storage"] == "video"}))
    result = AnnotateResult(output_root=out_root, staging_dir=staging_dir,
                            episodes=[int(e) for e in episodes["episode_index"]])
    rows = episodes.to_list()
    staging = Staging(staging_dir, inputs=episodes_inputs(rows, source.root, source_identity(config)))
    staging.save_inputs()
    return PreparedRun(source, episodes, rows, out_root, staging, result, lock)


def finish_run(run: PreparedRun, config: AnnotateConfig, vlm_config: VlmConfig, keys: dict[str, str], started: float,
               per_episode: dict[int, list[LanguageRow]] | None = None) -> AnnotateResult:
    """Validate and write every finished episode's rows once (default: assembled from staging)."""
    result, staging = run.result, run.staging
    modules = run_modules(config)
    if per_episode is None:
        finished = [e for e in result.episodes if e not in result.failures and e not in result.skipped]
        current = {m: keys[m] for m in modules.enabled_names}  # never a stale or disabled module
        per_episode = {e: assemble_rows(staging.current_rows(e, current), modules.all) for e in finished}
    for m in modules.enabled:  # what each module has to say about the run (plan: grounding)
        notes, reports = m.summarize({e: getattr(staging.lookup(e, m.name, keys[m.name]), "info", None)
                                      for e in per_episode})
        result.notes.extend(notes)
        result.reports.update(reports)
    result.rows_per_style = dict(Counter(str(r.style or "speech") for rs in per_episode.values() for r in rs))
    result.provenance = provenance(config, vlm_config, result, keys)
    # `push` reads these back so it never writes the source without --allow_source_overwrite
    result.provenance.update(source_repo_id=run.source.repo_id, source_revision=run.source.revision)
    if run.source.repo_id is not None:  # the commit the videos are read at (a streamed source's review reads it)
        from ..dataset.remote import snapshot_commit

        result.provenance["source_commit"] = snapshot_commit(run.source.root)
    if not config.push_staging_only:  # a shard job leaves writing to `merge`
        from .output import write_run
        from .publish import complete_videos

        if per_episode and not config.create_pr:  # a new root is complete: every video of a Hub source, whole
            result.notes.extend(complete_videos(run.source))
        result.validation, counts, result.provenance = write_run(
            run.source.root, run.out_root, per_episode, config, result.provenance, result.failures)
        result.rows_kept, result.rows_replaced = dict(counts.kept), dict(counts.replaced)
        result.rows_added = dict(counts.added)
    if config.push_to_hub and getattr(result.validation, "ok", True):
        from .publish import publish

        result.push = publish(config, result, run.source.revision)
    result.seconds = time.perf_counter() - started
    from ..dataset.remote import log_summary

    log_summary()  # the Hub video reads of this process (bytes, requests, share of the files)
    return result


def collect_annotations(annotated: Dataset, result: AnnotateResult) -> dict[int, list[LanguageRow]]:
    """Fold an `Annotator`-mapped episode table into `result` (failures, counts); the finished episodes' rows."""
    from .annotator import ANNOTATION_ERROR, ANNOTATION_STATS, LANGUAGE_ROWS, rows_from_column

    per_episode: dict[int, list[LanguageRow]] = {}
    frames = Counter()
    columns = annotated.select_columns(["episode_index", LANGUAGE_ROWS, ANNOTATION_ERROR, ANNOTATION_STATS])
    for row in columns:
        e, stats = int(row["episode_index"]), row[ANNOTATION_STATS]
        result.modules_run.update(stats["modules_run"])
        result.modules_reused.update(stats["modules_reused"])
        for name in ("calls", "failures", "prompt_tokens", "completion_tokens"):
            setattr(result.stats, name, getattr(result.stats, name) + int(stats[name]))
        frames.update({k: int(stats[f"frames_{k}"]) for k in ("decoded", "from_row", "reused")})
        if row[ANNOTATION_ERROR] is not None:
            result.failures[e] = row[ANNOTATION_ERROR]
        else:
            per_episode[e] = rows_from_column(row[LANGUAGE_ROWS])
    result.frames = {k: frames[k] for k in ("decoded", "from_row", "reused")}
    return per_episode


def write_annotations(annotated: Dataset, config: AnnotateConfig, vlm_config: VlmConfig, *,
                      started: float | None = None) -> AnnotateResult:
    """Validate and write an `Annotator`-mapped episode table (the end of a user's own datasets.map chain).

    Args:
        annotated: the episode table after `.map(Annotator(config, vlm_config), ...)`: its `language_rows`,
            `annotation_error` and `annotation_stats` columns are what is written and reported.
        config: the same `AnnotateConfig` the `Annotator` ran with (source, output, modules, push).
        vlm_config: the same `VlmConfig`; it names the model in the provenance and keys the staged work.
        started: `time.perf_counter()` at the start of the user's chain; default: the start of the `Annotator`
            map's first batch (recorded in `annotation_stats`), so `seconds` covers the map, not only the write.

    Returns:
        The run's `AnnotateResult` (validation report, failures, rows per style, push).
    """
    started = _map_started(annotated) if started is None else started
    run = prepare_run(config, vlm_config.camera_key)
    try:
        per_episode = collect_annotations(annotated, run.result)
        return finish_run(run, config, vlm_config, module_keys(config, vlm_config), started, per_episode)
    finally:
        if run.lock is not None:
            run.lock.release()


def _map_started(annotated: Dataset) -> float:
    """`time.perf_counter()` of the moment the table's first `Annotator` batch began (now, if not recorded)."""
    from .annotator import ANNOTATION_STATS

    now = time.perf_counter()
    stats = annotated.select_columns([ANNOTATION_STATS])[ANNOTATION_STATS] if len(annotated) else []
    starts = [float(s["started_at"]) for s in stats if s.get("started_at") is not None]
    return now - max(0.0, time.time() - min(starts)) if starts else now


@contextlib.contextmanager
def _datasets_bar_off() -> Iterator[None]:
    """The run shows its own episode bar; the map's single-batch bar would only say 0/1 then 1/1."""
    from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def run_annotation(config: AnnotateConfig, vlm_config: VlmConfig, *, vlm: VlmBackend | None = None,
                   provider: FrameProvider | None = None) -> AnnotateResult:
    """Annotate a dataset end to end: read, decode, ask, stage, validate, write. Returns a summary.

    The annotation itself is `episodes.map(Annotator(...), batched=True, with_rank=True)`; an in-process
    engine sits behind a `BatchingScheduler` so the episodes in flight share its batches. With
    `config.executor.engine == "ray"` the run goes to `ray_engine.run_annotation_ray` (config.ray).

    Args:
        config: the run: source (`root` / `repo_id`), output, modules, staging, push.
        vlm_config: the model and how to run it (`--vlm.*`); it keys the staged work and the provenance.
        vlm: a ready VLM (anything with `agenerate`, e.g. a scripted one in tests). Default: built here
            from `vlm_config` and closed at the end; a given one stays the caller's.
        provider: a frame provider to decode through (default: one made here for the episodes' videos).

    Returns:
        An `AnnotateResult`: validation report, per-episode failures, rows per style, calls, time, push.

    Raises:
        ValueError: a source, output, camera or model that cannot work (also `OSError`, `DatasetFormatError`,
            `HubError`), raised before any decode or model call.
        AnnotationError: with `config.on_error="stop"`, the first episode that fails.
    """
    if config.executor.engine == "ray":
        from .ray_engine import run_annotation_ray

        factory = (lambda: vlm) if vlm is not None else None
        return run_annotation_ray(config, vlm_config, vlm_factory=factory)
    started = time.perf_counter()
    run = prepare_run(config, vlm_config.camera_key, vlm_config=vlm_config if vlm is None else None)
    try:
        return _run_prepared(run, config, vlm_config, vlm, provider, started)
    finally:
        if run.lock is not None:
            run.lock.release()


def run_quality_checks(run: PreparedRun, config: AnnotateConfig, provider: FrameProvider | None = None) -> set[int]:
    """The quality checks of every engine, before any model call: fill `run.result.quality` and, under
    --quality.skip_bad_episodes, `run.result.skipped` (skipped, not failed); return the episodes to leave out.

    Without a `provider` one is made here for the checks' few frames and closed again.
    """
    if not config.quality.enabled:
        return set()
    from ..quality import check_episodes

    owned = provider is None
    if owned:
        from ..frames import make_frame_provider

        provider = make_frame_provider(run.rows, video_backend=config.video_backend, cache_mb=0,
                                       video_access=config.video_access)
    try:
        run.result.quality = check_episodes(run.rows, provider, config.quality, signal=config.motion.signal,
                                            gripper_index=config.motion.gripper_index)
    finally:
        if owned and hasattr(provider, "close"):
            provider.close()
    if config.quality.skip_bad_episodes and run.result.quality:
        run.result.skipped = {e: f"--quality.skip_bad_episodes: {f[0]}" for e, f in run.result.quality.items()}
    return set(run.result.skipped)


def _run_prepared(run: PreparedRun, config: AnnotateConfig, vlm_config: VlmConfig, vlm: VlmBackend | None,
                  provider: FrameProvider | None, started: float) -> AnnotateResult:
    from ..vlm.batching import BatchingScheduler, wrap_in_process
    from .annotator import Annotator

    rows = run.rows
    if provider is None:
        from ..frames import make_frame_provider

        provider = make_frame_provider(rows, video_backend=config.video_backend, cache_mb=config.frame_cache_mb,
                                       video_access=config.video_access)
    owned = vlm is None  # built here: released here (an engine's memory, an auto-served server)
    if owned and run_modules(config).asks_model:
        from ..vlm import make_backend

        vlm = make_backend(vlm_config)
    given, vlm = vlm, wrap_in_process(vlm)
    keys = module_keys(config, vlm_config)
    episodes = run.episodes
    if run_quality_checks(run, config, provider):
        episodes = episodes.select([i for i, e in enumerate(episodes["episode_index"])
                                    if e not in run.result.skipped])
    annotator = Annotator(config, vlm_config, staging_dir=run.staging.dir, vlm=vlm, provider=provider, keys=keys,
                          progress=True)
    try:
        with _datasets_bar_off():
            annotated = episodes.map(annotator, batched=True, batch_size=None, with_rank=True,
                                     features=annotator.features(episodes.features),
                                     new_fingerprint=annotator.fingerprint(), load_from_cache_file=False)
    finally:
        if owned and vlm is not None:
            vlm.close()
        elif vlm is not given:
            vlm.shutdown()  # the scheduler made here; the caller's engine stays theirs
    per_episode = collect_annotations(annotated, run.result)
    if isinstance(vlm, BatchingScheduler):
        run.result.batches = vlm.stats
    return finish_run(run, config, vlm_config, keys, started, per_episode)


def provenance(config: AnnotateConfig, vlm_config: VlmConfig | None, result: AnnotateResult,
               keys: dict[str, str]) -> dict[str, Any]:
    """What produced these annotations: for the dataset card and for anyone reading the output later."""
    modules = run_modules(config)
    return {
        "package": "lerobot_keyframes",
        "package_version": __version__,
        "model_id": getattr(vlm_config, "model_id", None),
        "model_revision": getattr(vlm_config, "revision", None),
        "backend": getattr(vlm_config, "backend", None),
        "sampling": {k: getattr(vlm_config, k, None) for k in ("temperature", "top_p", "seed", "max_new_tokens")},
        "prompt_hashes": {k: v for m in modules.all for k, v in m.prompt_hashes().items()},
        "module_keys": keys,
        "modules": modules.enabled_names,
        "episodes": len(result.episodes) - len(result.failures) - len(result.skipped),
        "skipped_episodes": {str(e): why for e, why in sorted(result.skipped.items())},
        "failed_episodes": {str(e): reason[:300] for e, reason in sorted(result.failures.items())},
        "rows_per_style": result.rows_per_style,
        "quality": {str(e): [f.as_dict() for f in fs] for e, fs in sorted(result.quality.items())},
        "notes": list(result.notes),
        **result.reports,
        "seed": config.seed,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
