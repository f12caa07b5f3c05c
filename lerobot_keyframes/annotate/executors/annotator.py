"""`Annotator`: the annotation step as a `datasets.map` callable.

    episodes = lk.load_episodes(root)
    frames = episodes.map(AnnotationKeyframes.for_annotation(episodes, config), batched=True)  # optional
    annotated = frames.map(Annotator(config, vlm_config), batched=True, batch_size=64, with_rank=True,
                           num_proc=n_gpus)
    write_annotations(annotated, config, vlm_config)

Each call annotates the episodes of its batch concurrently (an in-process engine gets them as batches),
staging every module so a re-run resumes, and returns each episode's language rows as typed columns.
With `with_rank=True` and `num_proc=N` each worker loads its own model on `cuda:<rank % GPUs>`, the
way the datasets docs run multi-GPU inference. Where it stages and under which keys is the run's plan
(`run.plan.RunPlan`), the one `run_annotation` and `write_annotations` make. The object pickles as its
configuration and plan: engines, decoders and HTTP clients are built lazily in the process that runs it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...language.rows import LanguageRow
from ...vlm.families import detect_family
from ..config import AnnotateConfig
from ..engine import EpisodeOutcome, annotate_rows
from ..run.keys import episodes_inputs
from ..run.plan import RunPlan, plan_run
from ..run.staging import Staging

if TYPE_CHECKING:
    from datasets import Features

    from ...frames import FrameProvider
    from ...vlm import VlmBackend, VlmConfig

logger = logging.getLogger(__name__)

LANGUAGE_ROWS = "language_rows"
ANNOTATION_ERROR = "annotation_error"
ANNOTATION_STATS = "annotation_stats"
OUTPUT_COLUMNS = (LANGUAGE_ROWS, ANNOTATION_ERROR, ANNOTATION_STATS)
STAT_FIELDS = ("calls", "failures", "prompt_tokens", "completion_tokens", "frames_decoded", "frames_from_row",
               "frames_reused")


def annotation_features() -> dict[str, Any]:
    """The columns `Annotator` adds: every row of the episode (lerobot's persistent row fields — events
    keep their frame time in `timestamp` too — plus the VQA `question_type`), the error, the counts."""
    from datasets import List, Value

    from ...language.schema import persistent_row_feature

    return {
        LANGUAGE_ROWS: List({**persistent_row_feature(), "question_type": Value("string")}),
        ANNOTATION_ERROR: Value("string"),
        ANNOTATION_STATS: {**{k: Value("int64") for k in STAT_FIELDS}, "modules_run": List(Value("string")),
                           "modules_reused": List(Value("string")), "started_at": Value("float64")},
    }


def outcome_columns(outcome: EpisodeOutcome, started_at: float | None = None) -> dict[str, Any]:
    """The columns of one episode; `started_at` (Unix time) is when its batch call began, so the run's summary
    can time the whole map, model load included (`write_annotations`)."""
    rows = [{**row.to_persistent(), "question_type": row.question_type} for row in outcome.rows]
    stats = {
        "calls": outcome.stats.calls, "failures": outcome.stats.failures,
        "prompt_tokens": outcome.stats.prompt_tokens, "completion_tokens": outcome.stats.completion_tokens,
        "frames_decoded": outcome.frames.decoded, "frames_from_row": outcome.frames.from_row,
        "frames_reused": outcome.frames.reused,
        "modules_run": sorted(m for m, n in outcome.modules_run.items() for _ in range(n)),
        "modules_reused": sorted(m for m, n in outcome.modules_reused.items() for _ in range(n)),
        "started_at": started_at,
    }
    return {LANGUAGE_ROWS: rows, ANNOTATION_ERROR: outcome.error, ANNOTATION_STATS: stats}


def rows_from_column(rows: list[Mapping[str, Any]]) -> list[LanguageRow]:
    """Rows of the `language_rows` column back as the `LanguageRow`s the writer and validator take."""
    return [LanguageRow.from_dict(row) for row in rows]


@dataclass
class Annotator:
    """Episode rows in, the same rows plus `language_rows`, `annotation_error`, `annotation_stats` out.

    Args:
        config: the run's `AnnotateConfig` (modules, staging, on_error, video decoder).
        vlm_config: the model and how to run it; it keys the staged work, and builds the VLM when `vlm`
            is not given (in the worker, on `cuda:<rank>` when ranked).
        plan: the run's plan (`run.plan.RunPlan`: staging folder, keys, modules); default: planned here from
            `config` and `vlm_config`, which gives the staging folder and keys `run_annotation` uses.
        vlm: a ready VLM (default: built from `vlm_config`). An in-process engine is wrapped in a
            `BatchingScheduler` so the batch's episodes share its batches.
        provider: a frame provider (default: built from the rows, closed after each call).
        progress: one progress display per call (a bar on a terminal, log lines in a log file).
    """

    config: AnnotateConfig
    vlm_config: VlmConfig
    plan: RunPlan | None = None
    vlm: VlmBackend | None = None
    provider: FrameProvider | None = None
    progress: bool = False  # one progress display per call (a bar on a terminal, log lines in a log file)

    def __post_init__(self) -> None:
        if self.plan is None:
            self.plan = plan_run(self.config, self.vlm_config)
        elif self.plan.config != self.config:
            raise ValueError("Annotator: the plan is of another AnnotateConfig than `config`")
        self._engine: VlmBackend | None = None
        self._engine_rank: int | None = None

    @property
    def staging_dir(self) -> Path:
        """Where the modules are staged (the plan's)."""
        return self._plan.staging_dir

    @property
    def keys(self) -> dict[str, str]:
        """The staging key of every registered module (the plan's)."""
        return self._plan.keys

    @property
    def _plan(self) -> RunPlan:
        assert self.plan is not None  # set in __post_init__
        return self.plan

    # -- pickling: configuration (and a given, picklable VLM) only ------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "vlm_config": self.vlm_config, "plan": self.plan,
                "vlm": _unwrapped(self.vlm), "provider": None, "progress": self.progress}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._engine, self._engine_rank = None, None

    def features(self, input_features: Mapping[str, Any] | None = None) -> Features:
        from datasets import Features

        return Features({**dict(input_features or {}), **annotation_features()})

    def fingerprint(self) -> str:
        """Stable across runs for the same inputs: the staging keys name everything that shapes the rows."""
        from ..config import config_hash

        return config_hash("annotator", self.keys, str(self.staging_dir))

    # -- the batch function --------------------------------------------------------------------------
    def __call__(self, batch: Mapping[str, Any], rank: int | None = None) -> dict[str, Any]:
        from ...transform import to_python as _to_py
        from ...vlm.base import run_coroutine_sync

        started_at = time.time()
        batch = {k: _to_py(v) for k, v in batch.items()}
        n = len(batch["episode_index"])
        rows = [{k: v[i] for k, v in batch.items()} for i in range(n)]
        outcomes = run_coroutine_sync(self.annotate(rows, rank))
        columns = [outcome_columns(o, started_at) for o in outcomes]
        return {k: [c[k] for c in columns] for k in OUTPUT_COLUMNS}

    async def annotate(self, rows: list[dict[str, Any]], rank: int | None = None) -> list[EpisodeOutcome]:
        """The outcomes of these episode rows (the async core of `__call__`, for callers with a loop)."""
        from ...frames import make_frame_provider
        from ...progress import RunProgress, quiet_transformers_bars

        if self.progress and self.vlm_config.backend == "transformers":
            quiet_transformers_bars()  # one display: the run's, not also transformers' "Loading weights"
        vlm = self._vlm(rank)
        provider = self.provider
        plan = self._plan
        if provider is None:
            provider = make_frame_provider(rows, video_backend=self.config.video_backend,
                                           cache_mb=self.config.frame_cache_mb, video_access=plan.video_access)
        root = rows[0].get("root") if rows else None  # staged work is checked against these episodes' inputs
        staging = Staging(plan.staging_dir, inputs=episodes_inputs(rows, root, plan.source_identity))
        modules = plan.modules.enabled_names
        progress = RunProgress(modules, len(rows), mode=None if self.progress else "off")

        def step(episode: int, module: str) -> None:
            progress.advance(module)

        def done(outcome: EpisodeOutcome) -> None:  # a failed episode's later modules will not run
            progress.drop(len(modules) - sum(outcome.modules_run.values()) - sum(outcome.modules_reused.values()))

        try:
            return await annotate_rows(rows, plan=plan, vlm=vlm, provider=provider, staging=staging,
                                       model_family=detect_family(self.vlm_config.model_id),
                                       on_done=done, on_step=step)
        finally:
            progress.close()
            if vlm is not None and hasattr(vlm, "aclose"):
                await vlm.aclose()  # clients bound to this loop go with it
            if self.provider is None and hasattr(provider, "close"):
                provider.close()

    def _vlm(self, rank: int | None) -> VlmBackend | None:
        """The VLM for this worker: the given one, or one built from `vlm_config` (on this rank's GPU)."""
        from ...vlm.batching import wrap_in_process

        if self._engine is not None and self._engine_rank == rank:
            return self._engine
        if not self._plan.modules.asks_model:
            return None
        vlm = self.vlm
        if vlm is None:
            from ...vlm import make_backend

            vlm = make_backend(vlm_for_rank(self.vlm_config, rank))
        self._engine, self._engine_rank = wrap_in_process(vlm), rank
        return self._engine


def _unwrapped(vlm: VlmBackend | None) -> VlmBackend | None:
    """The engine inside a `BatchingScheduler` (the scheduler's threads do not pickle; the engine may)."""
    from ...vlm.batching import BatchingScheduler

    return vlm.vlm if isinstance(vlm, BatchingScheduler) else vlm


def vlm_for_rank(vlm_config: VlmConfig, rank: int | None) -> VlmConfig:
    """`vlm_config` placed on GPU `rank % n` for a ranked datasets.map worker (transformers: `device`; vLLM:
    the worker sees that one GPU); unchanged without a rank or a GPU."""
    if rank is None or vlm_config.backend not in ("transformers", "vllm"):
        return vlm_config
    try:
        import torch

        n = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no torch CUDA: nothing to place
        n = 0
    if n == 0:
        return vlm_config
    gpu = rank % n
    if vlm_config.backend == "vllm":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", str(gpu))  # before the engine starts in this worker
        return vlm_config
    return replace(vlm_config, device=f"cuda:{gpu}") if vlm_config.device in ("auto", "cuda") else vlm_config
