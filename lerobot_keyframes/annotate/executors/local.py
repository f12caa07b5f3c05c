"""The local run: `datasets.map(Annotator(...))` over the episode table, with what a run needs around it.

`run_annotation` prepares the run (`run.prepare`: the source resolved and checked, staging opened), maps the
`Annotator` step over the episode table with one engine (in-process engines behind a `BatchingScheduler`) and one
frame provider, and finishes it (`run.finish`: the validated write of the mapped rows, the push). There is no
barrier between modules across the dataset: the episodes in flight each move to their next module as soon as the
previous one is staged, so the engine always has work. `write_annotations` is the same end for a user's own
`datasets.map` chain.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..config import AnnotateConfig
from ..run.finish import finish_run
from ..run.prepare import PreparedRun, prepare_run, run_quality_checks
from ..run.result import AnnotateResult
from .annotator import ANNOTATION_ERROR, ANNOTATION_STATS, LANGUAGE_ROWS, Annotator, rows_from_column
from .ray import run_prepared_on_ray

if TYPE_CHECKING:
    from datasets import Dataset

    from ...frames import FrameProvider
    from ...language import LanguageRow
    from ...vlm import VlmBackend, VlmConfig

__all__ = ["AnnotateResult", "collect_annotations", "run_annotation", "write_annotations"]


def collect_annotations(annotated: Dataset, result: AnnotateResult) -> dict[int, list[LanguageRow]]:
    """Fold an `Annotator`-mapped episode table into `result` (failures, counts); the finished episodes' rows."""
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
    run = prepare_run(config, vlm_config, check_backend=False)
    try:
        per_episode = collect_annotations(annotated, run.result)
        return finish_run(run, vlm_config, started, per_episode)
    finally:
        if run.lock is not None:
            run.lock.release()


def _map_started(annotated: Dataset) -> float:
    """`time.perf_counter()` of the moment the table's first `Annotator` batch began (now, if not recorded)."""
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
    `config.executor.engine == "ray"` the prepared run goes to Ray Data (`executors.ray`, config.ray).

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
    started = time.perf_counter()
    run = prepare_run(config, vlm_config, check_backend=vlm is None)
    try:
        if run.plan.engine == "ray":
            return run_prepared_on_ray(run, vlm_config, started, vlm_factory=(lambda: vlm) if vlm is not None else None)
        return _run_prepared(run, vlm_config, vlm, provider, started)
    finally:
        if run.lock is not None:
            run.lock.release()


def _run_prepared(run: PreparedRun, vlm_config: VlmConfig, vlm: VlmBackend | None, provider: FrameProvider | None,
                  started: float) -> AnnotateResult:
    from ...vlm.batching import BatchingScheduler, wrap_in_process

    plan, rows = run.plan, run.rows
    if provider is None:
        from ...frames import make_frame_provider

        provider = make_frame_provider(rows, video_backend=plan.config.video_backend,
                                       cache_mb=plan.config.frame_cache_mb, video_access=plan.video_access)
    owned = vlm is None  # built here: released here (an engine's memory, an auto-served server)
    if owned and plan.modules.asks_model:
        from ...vlm import make_backend

        vlm = make_backend(vlm_config)
    given, vlm = vlm, wrap_in_process(vlm)
    episodes = run.episodes
    if run_quality_checks(run, provider):
        episodes = episodes.select([i for i, e in enumerate(episodes["episode_index"])
                                    if e not in run.result.skipped])
    annotator = Annotator(plan.config, vlm_config, plan=plan, vlm=vlm, provider=provider, progress=True)
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
    return finish_run(run, vlm_config, started, per_episode)
