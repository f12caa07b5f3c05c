"""Write the two language columns into a LeRobot v3 dataset, safely.

Improvements over lerobot's own writer, each for a failure seen in practice:

- the columns are built with the declared types, so every shard has the same schema (`shards`);
- episodes not annotated in this run keep the rows they already have (a partial re-run no longer
  wipes the other episodes of the shard);
- every shard and `meta/info.json` is replaced atomically (`lerobot_keyframes.utils.files`): a crash
  leaves the old file intact;
- nothing is ever written through a symlink: a Hugging Face cache snapshot is refused for in-place
  writes (`safety`), and the default output is a new root (`new_root`: meta and data copied, videos
  hard-linked or copied);
- an in-place write is all-or-nothing (`journal`): a write killed before its commit leaves the dataset as
  it was; one killed after it is finished by the next write or run (`recover_interrupted_write`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dataset.layout import INFO_PATH, DatasetLayout
from ..utils.files import atomic_write_text
from .annotations import EpisodeAnnotations
from .info import update_info, write_info
from .journal import JOURNAL_DIR, crash_point, inside, recover_interrupted_write, write_journaled
from .new_root import write_new_root
from .report import Issue, LanguageValidationError, ValidationReport, ValidatorConfig
from .safety import UnsafeWriteError, check_in_place_safe, is_hf_cache_path
from .shards import ShardsWritten, write_shards
from .validator import validate_annotations

__all__ = [
    "STRUCTURAL_RULES",
    "UnsafeWriteError",
    "WriteResult",
    "check_in_place_safe",
    "crash_point",
    "is_hf_cache_path",
    "recover_interrupted_write",
    "update_info",
    "write_language",
]

logger = logging.getLogger(__name__)

# Errors the writer cannot work around even with validation skipped: it would misplace or drop rows.
STRUCTURAL_RULES = frozenset({"unknown_style", "wrong_column", "timestamp_not_float32", "timestamp_not_frame",
                              "unknown_episode", "invalid_role"})


@dataclass(frozen=True)
class WriteResult:
    """Where the annotated dataset is and what went into it."""

    root: Path
    shards_written: tuple[Path, ...]
    episodes_written: tuple[int, ...]
    episodes_kept: tuple[int, ...]
    rows_per_style: dict[str, int]
    report: ValidationReport = field(repr=False)


def write_language(
    source: str | Path,
    annotations: Iterable[EpisodeAnnotations] | Mapping[int, EpisodeAnnotations],
    *,
    out: str | Path | None = None,
    in_place: bool = False,
    overwrite: bool = False,
    validate: bool = True,
    validator_config: ValidatorConfig | None = None,
    link_videos: bool = True,
    extra_files: Mapping[str, str] | None = None,
) -> WriteResult:
    """Write `annotations` into the data shards of the dataset at `source`.

    By default the result is a NEW dataset root `out` (built next to it under a temporary name, then
    renamed into place): meta and data are copied, videos hard-linked when the file system allows it,
    else copied. `in_place=True` rewrites `source` itself, and is refused when any file to rewrite is a
    symlink or the root lies in a Hugging Face cache. Episodes absent from `annotations` keep the language
    rows they already have. Rows are validated first (`validate=False` skips the rules that do not affect
    placement); on errors nothing is written and `LanguageValidationError` carries the report.
    `extra_files` (root-relative path -> text, e.g. the provenance) are written in the same all-or-nothing step.
    """
    from ..dataset.episodes import build_episode_rows
    from ..dataset.records import Episode

    if Path(source).expanduser().is_dir():
        recover_interrupted_write(Path(source).expanduser())
    layout = DatasetLayout.open(source)
    anns = _collect(annotations)
    episodes = [Episode.from_row(row) for row in build_episode_rows(layout)]
    report = _validate(layout, anns, {e.episode_index: e.timestamps for e in episodes}, validate, validator_config)
    shards = sorted({layout.root / e.data_file for e in episodes})
    image_keys = [k for k, f in layout.features.items() if f.get("dtype") == "image"]
    extra = dict(extra_files or {})

    def fill(dest: Path, *, copy_unchanged: bool) -> ShardsWritten:
        """Every new file of the write, under `dest`: shards, then info.json and the extra files."""
        written = write_shards(layout.root, dest, anns, shards, image_keys, copy_unchanged=copy_unchanged)
        write_info(dest, layout.root / INFO_PATH)
        for rel, text in extra.items():
            atomic_write_text(inside(dest, rel), text)
        return written

    if in_place:
        if out is not None and Path(out).expanduser().resolve() != layout.root:
            raise ValueError(f"in_place=True writes into {layout.root}; do not also pass out={out}")
        check_in_place_safe(layout.root, [*shards, layout.root / INFO_PATH, *(layout.root / rel for rel in extra),
                                          layout.root / JOURNAL_DIR / "journal.json"])
        result = write_journaled(layout.root, lambda dest: fill(dest, copy_unchanged=False))
        return _result(layout.root, result, report)
    if out is None:
        raise ValueError(f"pass out=<new dataset root> (or in_place=True for a local dataset) to annotate {layout.root}")
    out = Path(out).expanduser().absolute()
    result = write_new_root(layout.root, out, lambda dest: fill(dest, copy_unchanged=True), skip=set(shards),
                            overwrite=overwrite, link_videos=link_videos)
    return _result(out, result, report)


def _collect(annotations: Iterable[EpisodeAnnotations] | Mapping[int, EpisodeAnnotations]
             ) -> dict[int, EpisodeAnnotations]:
    items = annotations.values() if isinstance(annotations, Mapping) else annotations
    out: dict[int, EpisodeAnnotations] = {}
    for ann in items:
        if ann.episode_index in out:
            raise ValueError(f"episode {ann.episode_index} is given twice")
        out[ann.episode_index] = ann
    return out


def _validate(layout: DatasetLayout, anns: Mapping[int, EpisodeAnnotations], times: Mapping[int, np.ndarray],
              validate: bool, config: ValidatorConfig | None) -> ValidationReport:
    """What `validate_dataset` would check, checked before writing; raises on blocking errors, logs warnings."""
    report = validate_annotations(anns.values(), times, cameras=layout.camera_keys, config=config,
                                  video_cameras=layout.video_keys)
    blocking = report.errors if validate else [i for i in report.errors if i.rule in STRUCTURAL_RULES]
    if blocking:
        raise LanguageValidationError(ValidationReport(blocking, report.episodes_checked))
    by_rule: dict[str, list[Issue]] = defaultdict(list)
    for issue in report.warnings:
        by_rule[issue.rule].append(issue)
    for rule, issues in by_rule.items():
        logger.warning("%d warning(s) [%s], e.g. %s", len(issues), rule, issues[0])
    return report


def _result(root: Path, written: ShardsWritten, report: ValidationReport) -> WriteResult:
    shards = tuple(root / rel for rel in written.shards)
    return WriteResult(root, shards, written.episodes_written, written.episodes_kept, written.rows_per_style, report)
