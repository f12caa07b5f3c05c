"""Check language rows against lerobot's rules before anything is written (and on any annotated dataset).

Every rule prevents a concrete failure downstream: lerobot's resolvers (`active_at`, `emitted_at`) raise
"ambiguous" on duplicate rows, events off a frame are silently dropped, malformed speech atoms or VQA answers
poison training targets. The rules live by scope: one row (`row_checks`), one episode (`episode_checks`),
one frame's VQA across cameras (`vqa_checks`); issues go into a `ValidationReport` (`report`). This module
runs them on rows in memory (`validate_episode`, `validate_annotations`) or on a dataset (`validate_dataset`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .annotations import EpisodeAnnotations
from .episode_checks import check_events, check_persistent
from .report import Issue, LanguageValidationError, ValidationReport, ValidatorConfig
from .row_checks import RowContext, check_row
from .schema import (
    LANGUAGE_COLUMNS,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    SAY_TOOL_NAME,
    LanguageColumn,
    LanguageRow,
    is_say_tool,
    language_feature_info,
)
from .stored import read_dataset_annotations
from .vqa_checks import check_vqa_answer, classify_vqa_answer

if TYPE_CHECKING:
    from ..dataset.layout import DatasetLayout

__all__ = [
    "EpisodeAnnotations",
    "Issue",
    "LanguageValidationError",
    "ValidationReport",
    "ValidatorConfig",
    "check_vqa_answer",
    "classify_vqa_answer",
    "read_dataset_annotations",
    "validate_annotations",
    "validate_dataset",
    "validate_episode",
]


def validate_episode(
    annotations: EpisodeAnnotations,
    frame_timestamps: Sequence[float] | np.ndarray,
    *,
    cameras: Sequence[str] | None = None,
    config: ValidatorConfig | None = None,
    report: ValidationReport | None = None,
    video_cameras: Sequence[str] | None = None,
) -> ValidationReport:
    """Check one episode's rows against its exact parquet frame timestamps and the dataset's cameras
    (`video_cameras`: those stored as videos, for `ValidatorConfig.vqa_on_image_cameras`)."""
    config = config or ValidatorConfig()
    report = report if report is not None else ValidationReport()
    ep = annotations.episode_index
    report.episodes_checked.append(ep)
    ts_array = np.asarray(frame_timestamps)
    if ts_array.dtype != np.float32:
        report.warning("frame_timestamps", f"frame timestamps are {ts_array.dtype}, expected float32 from the parquet",
                       episode_index=ep)
    frames = [float(t) for t in ts_array]
    videos = None if video_cameras is None or config.vqa_on_image_cameras else frozenset(video_cameras)
    ctx = RowContext(ep, frozenset(frames), None if cameras is None else frozenset(cameras), videos)
    persistent = _valid_rows(annotations.persistent, LANGUAGE_PERSISTENT, ctx, report)
    events = _valid_rows(annotations.events, LANGUAGE_EVENTS, ctx, report)
    check_persistent(persistent, frames, config, report, ep)
    check_events(events, persistent, config, report, ep)
    return report


def _valid_rows(rows: Iterable[LanguageRow], column: LanguageColumn, ctx: RowContext, report: ValidationReport
                ) -> list[LanguageRow]:
    """The rows of one column that pass the per-row rules (the others are reported)."""
    return [row for row in rows if check_row(row, column, ctx, report)]


def validate_annotations(
    annotations: Iterable[EpisodeAnnotations],
    frame_timestamps: Mapping[int, Sequence[float] | np.ndarray],
    *,
    cameras: Sequence[str] | None = None,
    config: ValidatorConfig | None = None,
    video_cameras: Sequence[str] | None = None,
) -> ValidationReport:
    """Validate several episodes; `frame_timestamps` maps episode index to its exact parquet timestamps."""
    report = ValidationReport()
    for ann in annotations:
        if ann.episode_index not in frame_timestamps:
            report.error("unknown_episode", f"episode {ann.episode_index} is not in the dataset",
                         episode_index=ann.episode_index)
            continue
        validate_episode(ann, frame_timestamps[ann.episode_index], cameras=cameras, config=config, report=report,
                         video_cameras=video_cameras)
    return report


# -- validating a dataset on disk ------------------------------------------------------------------
def validate_dataset(root: str | Path, *, config: ValidatorConfig | None = None,
                     episodes: Iterable[int] | None = None) -> ValidationReport:
    """Validate an annotated dataset: info.json declarations, shard schemas, and every episode's rows."""
    from ..dataset.layout import DatasetLayout

    layout = DatasetLayout.open(root)
    report = ValidationReport()
    _check_declarations(layout, report)
    anns, times = read_dataset_annotations(layout.root, episodes=episodes, report=report)
    has_speech = any(r.style is None for a in anns.values() for r in a.events)
    if has_speech and not any(is_say_tool(t) for t in layout.info.get("tools") or []):
        report.warning("say_tool_missing", f"{layout.root / 'meta/info.json'}: speech atoms call '{SAY_TOOL_NAME}' "
                       "but info.json 'tools' does not declare it (lerobot falls back to its default tools)")
    for e in sorted(anns):
        if anns[e].empty:
            report.episodes_checked.append(e)
            continue
        validate_episode(anns[e], times[e], cameras=layout.camera_keys, config=config, report=report,
                         video_cameras=layout.video_keys)
    _check_failed_episodes(layout.root, anns, report)
    return report


def _check_declarations(layout: DatasetLayout, report: ValidationReport) -> None:
    """info.json declares exactly the language columns the shards store, as lerobot needs; shards share a schema."""
    import pyarrow.parquet as pq

    info_path = layout.root / "meta/info.json"
    expected = language_feature_info()
    shards = sorted((layout.root / "data").glob("*/*.parquet"))
    schemas = {p: pq.read_schema(p) for p in shards}
    stored = {c for s in schemas.values() for c in s.names if c in LANGUAGE_COLUMNS}
    for col in LANGUAGE_COLUMNS:
        declared = layout.features.get(col)
        if col in stored and declared is None:
            report.error("info_undeclared", f"{info_path}: parquet has {col!r} but info.json does not declare it; "
                         "lerobot refuses to load the dataset")
        elif declared is not None and (declared.get("dtype"), list(declared.get("shape") or []),
                                       declared.get("names")) != ("language", [1], None):
            report.error("info_declaration", f"{info_path}: {col} must be declared as {expected[col]}, got {declared}")
        elif declared is not None and col not in stored:
            report.error("info_declared_missing", f"{info_path}: declares {col!r} but no data shard has it")
    if not stored:
        report.warning("no_language", f"{layout.root}: no language columns in the data shards")
    distinct = {s.remove_metadata() for s in schemas.values()}
    if len(distinct) > 1:
        report.warning("mixed_shard_schemas",
                       f"{len(distinct)} different parquet schemas across {len(shards)} data shards; loaders that "
                       "read without features (streaming, load_dataset) may fail")


def _check_failed_episodes(root: Path, anns: Mapping[int, EpisodeAnnotations], report: ValidationReport) -> None:
    """Episodes the annotation run recorded as failed (meta/annotation_provenance.json) are never passed silently:
    an error when they have no rows, a warning when they kept rows from before."""
    try:
        failed = json.loads((root / "meta/annotation_provenance.json").read_text(encoding="utf-8"))["failed_episodes"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    for key, reason in sorted((failed or {}).items(), key=lambda kv: int(kv[0])):
        e = int(key)
        if e not in anns:
            continue
        rerun = f"re-run it with --only_episodes={e}"
        if anns[e].empty:
            report.error("annotation_failed", f"episode {e} failed in the annotation run and has no language rows "
                         f"({str(reason)[:300]}); {rerun}", episode_index=e)
        else:
            report.warning("annotation_failed_kept", f"episode {e} failed in the last annotation run and kept its "
                           f"earlier rows ({str(reason)[:300]}); {rerun}", episode_index=e)
