"""Write the two language columns into a LeRobot v3 dataset, safely.

Improvements over lerobot's own writer, each for a failure seen in practice:

- the columns are built with the declared types, so every shard has the same schema (lerobot infers
  it per shard, and mixed shards break loaders that read without features);
- episodes not annotated in this run keep the rows they already have (a partial re-run no longer
  wipes the other episodes of the shard);
- every shard and `meta/info.json` is replaced atomically (temp file in the same directory, fsync,
  `os.replace`): a crash leaves the old file intact;
- nothing is ever written through a symlink: a Hugging Face cache snapshot is refused for in-place
  writes, and the default output is a new root (meta and data copied, videos hard-linked or copied);
- an in-place write is all-or-nothing: every new shard, `meta/info.json` and the provenance are written
  beside under `<root>/.lerobot_keyframes/journal/new/`, a journal record then commits the swap, and the
  files are renamed into place. A write killed before the commit leaves the dataset as it was; one killed
  after it is finished by the next write or run (`recover_interrupted_write`), before anything reads it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..dataset.errors import DatasetFormatError
from ..dataset.layout import INFO_PATH, DatasetLayout, check_output_separate, iter_dataset_files
from ..utils.files import atomic_path, atomic_write_text, fsync_dir
from .schema import (
    LANGUAGE_COLUMNS,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    SAY_TOOL_NAME,
    SAY_TOOL_SCHEMA,
    LanguageRow,
    column_arrow_type,
    decode_stored_rows,
    event_sort_key,
    is_say_tool,
    language_feature_info,
    language_features,
    persistent_sort_key,
    rows_to_struct_array,
)
from .validator import (
    EpisodeAnnotations,
    LanguageValidationError,
    ValidationReport,
    ValidatorConfig,
    validate_annotations,
)

logger = logging.getLogger(__name__)

# Errors the writer cannot work around even with validation skipped: it would misplace or drop rows.
STRUCTURAL_RULES = frozenset({"unknown_style", "wrong_column", "timestamp_not_float32", "timestamp_not_frame",
                              "unknown_episode", "invalid_role"})
JOURNAL_DIR = ".lerobot_keyframes/journal"  # in-place writes: new files + commit record (pushes skip the folder)
_SKIP_TOP_LEVEL = {".git", ".cache", ".lerobot_keyframes"}
CRASH_ENV = "LEROBOT_KEYFRAMES_CRASH_AT"  # tests: "point" or "point:N" kills the process (SIGKILL) there
_crash_counts: Counter[str] = Counter()


class UnsafeWriteError(DatasetFormatError):
    """Writing would go through a symlink or into a Hugging Face cache; write to a new root instead."""


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
    if Path(source).expanduser().is_dir():
        recover_interrupted_write(Path(source).expanduser())
    layout = DatasetLayout.open(source)
    anns = _collect(annotations)
    from ..dataset.episodes import build_episode_rows

    episode_rows = build_episode_rows(layout)
    times = {r["episode_index"]: np.asarray(r["timestamps"], dtype=np.float32) for r in episode_rows}
    report = validate_annotations(anns.values(), times, cameras=layout.camera_keys, config=validator_config,
                                  video_cameras=layout.video_keys)  # what `validate` checks, checked before writing
    blocking = report.errors if validate else [i for i in report.errors if i.rule in STRUCTURAL_RULES]
    if blocking:
        raise LanguageValidationError(ValidationReport(blocking, report.episodes_checked))
    by_rule: dict[str, list[Any]] = defaultdict(list)
    for issue in report.warnings:
        by_rule[issue.rule].append(issue)
    for rule, issues in by_rule.items():
        logger.warning("%d warning(s) [%s], e.g. %s", len(issues), rule, issues[0])

    shards = sorted({layout.root / r["data_file"] for r in episode_rows})
    if in_place:
        if out is not None and Path(out).expanduser().resolve() != layout.root:
            raise ValueError(f"in_place=True writes into {layout.root}; do not also pass out={out}")
        extra = {rel: layout.root / rel for rel in (extra_files or {})}
        check_in_place_safe(layout.root, [*shards, layout.root / INFO_PATH, *extra.values(),
                                          layout.root / JOURNAL_DIR / "journal.json"])
        return _write_journaled(layout, anns, shards, report, extra_files or {})

    if out is None:
        raise ValueError(f"pass out=<new dataset root> (or in_place=True for a local dataset) to annotate {layout.root}")
    out = Path(out).expanduser().absolute()
    check_output_separate(source, out, what="output")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        data_shards = set(shards)
        _copy_tree(layout.root, staging, skip=data_shards, link_videos=link_videos)
        result = _write(layout, staging, anns, shards, report, copy_unchanged=True)
        for rel, text in (extra_files or {}).items():
            atomic_write_text(_inside(staging, rel), text)
        if out.exists():
            trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, trash)
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    written = tuple(out / p.relative_to(staging) for p in result.shards_written)
    return WriteResult(out, written, result.episodes_written, result.episodes_kept, result.rows_per_style, report)


def _collect(annotations: Iterable[EpisodeAnnotations] | Mapping[int, EpisodeAnnotations]) -> dict[int, EpisodeAnnotations]:
    items = annotations.values() if isinstance(annotations, Mapping) else annotations
    out: dict[int, EpisodeAnnotations] = {}
    for ann in items:
        if ann.episode_index in out:
            raise ValueError(f"episode {ann.episode_index} is given twice")
        out[ann.episode_index] = ann
    return out


# -- all-or-nothing in-place writes --------------------------------------------------------------------
def crash_point(name: str) -> None:
    """Tests kill the process here (SIGKILL) when `LEROBOT_KEYFRAMES_CRASH_AT` names this point ("name[:N]")."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _crash_counts[name] += 1
    if _crash_counts[name] >= int(nth or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _inside(root: Path, rel: str) -> Path:
    path = Path(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{rel!r} is not a path inside {root}")
    return root / path


def recover_interrupted_write(root: str | Path) -> str | None:
    """Finish or undo an in-place write that was killed: "rolled_forward", "rolled_back" or None (none found).

    Before the journal's commit record the dataset was not touched: the new files are discarded. After
    it, every new file still waiting is renamed into place. Both are safe to repeat if killed again.
    """
    root = Path(root)
    journal = root / JOURNAL_DIR
    if not journal.is_dir() or journal.is_symlink():
        return None
    try:
        record = json.loads((journal / "journal.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    if isinstance(record, dict) and record.get("state") == "committed":
        files = [str(f) for f in record.get("files", [])]
        moved = 0
        for rel in files:
            src = _inside(journal / "new", rel)
            if src.is_file():
                dst = _inside(root, rel)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                fsync_dir(dst.parent)
                moved += 1
        _remove_journal(journal)
        logger.warning("%s: finished an interrupted in-place write (%d of %d file(s) were still to swap in)",
                       root, moved, len(files))
        return "rolled_forward"
    _remove_journal(journal)
    logger.warning("%s: discarded an in-place write that was interrupted before its commit; the dataset is as "
                   "it was before that write", root)
    return "rolled_back"


def _remove_journal(journal: Path) -> None:
    shutil.rmtree(journal, ignore_errors=True)
    try:
        journal.parent.rmdir()  # the `.lerobot_keyframes` folder, when nothing else is in it
    except OSError:
        pass


def _write_journaled(layout: DatasetLayout, anns: dict[int, EpisodeAnnotations], shards: list[Path],
                     report: ValidationReport, extra_files: Mapping[str, str]) -> WriteResult:
    root = layout.root
    journal = root / JOURNAL_DIR
    shutil.rmtree(journal, ignore_errors=True)  # recovered at the start; anything left is not committed
    new_root = journal / "new"
    new_root.mkdir(parents=True)
    result = _write(layout, new_root, anns, shards, report, copy_unchanged=False)
    for rel, text in extra_files.items():
        path = _inside(new_root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    files = sorted(p.relative_to(new_root).as_posix() for p in new_root.rglob("*") if p.is_file())
    crash_point("journal.prepared")
    atomic_write_text(journal / "journal.json", json.dumps({"state": "committed", "files": files}, indent=1))
    crash_point("journal.committed")
    # data shards first, meta/info.json (which declares their columns) last
    for rel in sorted(files, key=lambda f: (f == INFO_PATH, f)):
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(new_root / rel, dst)
        fsync_dir(dst.parent)
        crash_point("journal.swap")
    _remove_journal(journal)
    written = tuple(root / p.relative_to(new_root) for p in result.shards_written)
    return WriteResult(root, written, result.episodes_written, result.episodes_kept, result.rows_per_style, report)


# -- safety ------------------------------------------------------------------------------------------
def is_hf_cache_path(path: Path) -> bool:
    """True for paths inside a Hugging Face hub cache (`.../datasets--owner--name/snapshots/<rev>/...`)."""
    parts = path.parts
    return any(p.startswith(("datasets--", "models--", "spaces--")) and i + 1 < len(parts)
               and parts[i + 1] in ("snapshots", "blobs") for i, p in enumerate(parts))


def check_in_place_safe(root: Path, files: Iterable[Path]) -> None:
    """Refuse in-place writes through symlinks (a cache snapshot points into shared blobs) or into a cache."""
    if is_hf_cache_path(root) or is_hf_cache_path(root.resolve()):
        raise UnsafeWriteError(
            f"{root} is inside a Hugging Face cache; annotating it in place would corrupt the cache. "
            "Write to a new root instead (out=... / --out DIR)."
        )
    for path in files:
        probe = path
        while True:
            if probe.is_symlink():
                raise UnsafeWriteError(
                    f"{probe} is a symlink (-> {os.readlink(probe)}); in-place writes never go through symlinks "
                    "(a Hugging Face cache snapshot links into shared blobs). Write to a new root instead "
                    "(out=... / --out DIR)."
                )
            if probe == root or probe.parent == probe:
                break
            probe = probe.parent


def _copy_tree(src: Path, dst: Path, *, skip: set[Path], link_videos: bool) -> None:
    """Copy a dataset root: regular copies of meta and data (never links), videos hard-linked when possible."""
    dst.mkdir(parents=True)
    linked = copied = 0
    # only files of the root itself (links into the HF blob store of its repo included), never a link outside
    for path in iter_dataset_files(src, skip=lambda rel: rel.rstrip("/") in _SKIP_TOP_LEVEL):
        rel_dir = path.parent.relative_to(src)
        name = path.name
        (dst / rel_dir).mkdir(parents=True, exist_ok=True)
        if path in skip or ".tmp-" in name:
            continue
        target = dst / rel_dir / name
        if link_videos and rel_dir.parts[:1] == ("videos",):
            try:
                os.link(os.path.realpath(path), target)
                linked += 1
                continue
            except OSError:
                pass
        shutil.copyfile(path, target)  # follows symlinks: the copy is a real file
        copied += 1
    logger.info("copied %d file(s), hard-linked %d video file(s) into %s", copied, linked, dst)


# -- info.json ---------------------------------------------------------------------------------------
def update_info(info: dict[str, Any]) -> dict[str, Any]:
    """info.json with both language features declared and the `say` tool added; every other key kept."""
    info = json.loads(json.dumps(info))
    features = info.setdefault("features", {})
    features.update(language_feature_info())
    tools = info.get("tools")
    if not isinstance(tools, list):
        tools = []
    names = [((t or {}).get("function") or {}).get("name") for t in tools if isinstance(t, dict)]
    if SAY_TOOL_NAME not in names:
        tools.append(json.loads(json.dumps(SAY_TOOL_SCHEMA)))
    else:
        existing = tools[names.index(SAY_TOOL_NAME)]
        if not is_say_tool(existing):
            logger.warning("meta/info.json declares a 'say' tool without a required string 'text' parameter; "
                           "kept as is, but speech atoms call say(text=...)")
    info["tools"] = tools
    return info


def write_info(root: Path, source: Path | None = None) -> None:
    """`root`'s meta/info.json with the language declarations, read from `source` (default: that same file)."""
    path = root / INFO_PATH
    info = json.loads((source or path).read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(update_info(info), indent=4, ensure_ascii=False) + "\n")


# -- shards ------------------------------------------------------------------------------------------
def _target_schema(first: pa.Schema, image_keys: Iterable[str] = ()) -> pa.Schema:
    """The one schema every shard gets: the first shard's other columns (types, order) + declared language types.

    Language columns keep their position when the dataset already has them, else they are appended. The
    `huggingface` metadata is rebuilt so `datasets` readers without explicit features see the same features.
    """
    from datasets import Features

    fields = []
    for f in first:
        if f.name in LANGUAGE_COLUMNS:
            fields.append(pa.field(f.name, column_arrow_type(f.name)))
        else:
            fields.append(f)
    for col in LANGUAGE_COLUMNS:
        if col not in first.names:
            fields.append(pa.field(col, column_arrow_type(col)))
    base = pa.schema([f for f in first if f.name not in LANGUAGE_COLUMNS], metadata=first.metadata)
    features = Features.from_arrow_schema(base)
    for key in image_keys:  # image cameras stored in the parquet decode as images, not {bytes, path} dicts
        if key in features and isinstance(features[key], dict) and set(features[key]) == {"bytes", "path"}:
            from datasets import Image

            features[key] = Image()
    lang = language_features()
    feats = Features({f.name: (lang[f.name] if f.name in lang else features[f.name]) for f in fields})
    metadata = {k: v for k, v in (first.metadata or {}).items() if k not in (b"huggingface", b"ARROW:schema")}
    metadata.update(feats.arrow_schema.metadata or {})
    return pa.schema(fields, metadata=metadata)


def _segments(episode_col: np.ndarray) -> list[tuple[int, int, int]]:
    """(episode, start, stop) runs of the episode_index column, in file order."""
    if len(episode_col) == 0:
        return []
    starts = np.concatenate(([0], np.nonzero(np.diff(episode_col))[0] + 1))
    stops = np.append(starts[1:], len(episode_col))
    return [(int(episode_col[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def _persistent_cells(rows: list[LanguageRow], n_frames: int) -> pa.Array:
    """The same sorted list on every frame of the episode."""
    rows = sorted(rows, key=persistent_sort_key)
    values = rows_to_struct_array(rows, LANGUAGE_PERSISTENT)
    n = len(rows)
    offsets = pa.array(np.arange(n_frames + 1, dtype=np.int32) * n, type=pa.int32())
    if n:
        values = values.take(pa.array(np.tile(np.arange(n, dtype=np.int64), n_frames)))
    return pa.ListArray.from_arrays(offsets, values, type=column_arrow_type(LANGUAGE_PERSISTENT))


def _event_cells(rows: list[LanguageRow], timestamps: np.ndarray, episode: int, path: Path) -> pa.Array:
    """Each event on the frame whose parquet timestamp equals its time exactly."""
    position = {float(t): k for k, t in enumerate(timestamps)}
    per_frame: dict[int, list[LanguageRow]] = defaultdict(list)
    for r in rows:
        k = position.get(r.timestamp)
        if k is None:  # the validator rejects these first; never drop a row silently
            raise DatasetFormatError(f"{path}: episode {episode} has no frame at t={r.timestamp!r} for a {r.style} event")
        per_frame[k].append(r)
    ordered: list[LanguageRow] = []
    counts = np.zeros(len(timestamps), dtype=np.int32)
    for k in sorted(per_frame):
        frame_rows = sorted(per_frame[k], key=event_sort_key)
        ordered.extend(frame_rows)
        counts[k] = len(frame_rows)
    offsets = pa.array(np.concatenate(([0], np.cumsum(counts))).astype(np.int32), type=pa.int32())
    values = rows_to_struct_array(ordered, LANGUAGE_EVENTS)
    return pa.ListArray.from_arrays(offsets, values, type=column_arrow_type(LANGUAGE_EVENTS))


def _existing_rows(table: pa.Table, start: int, stop: int, timestamps: np.ndarray) -> tuple[list[LanguageRow], list[LanguageRow]]:
    persistent: list[LanguageRow] = []
    events: list[LanguageRow] = []
    if LANGUAGE_PERSISTENT in table.column_names and stop > start:
        persistent = decode_stored_rows(table[LANGUAGE_PERSISTENT].slice(start, 1).to_pylist()[0])
    if LANGUAGE_EVENTS in table.column_names:
        for k, cell in enumerate(table[LANGUAGE_EVENTS].slice(start, stop - start).to_pylist()):
            events.extend(decode_stored_rows(cell, timestamp=float(timestamps[k])))
    return persistent, events


def rewrite_shard(src: Path, dst: Path, schema: pa.Schema, anns: Mapping[int, EpisodeAnnotations]) -> tuple[list[int], list[int]]:
    """Rewrite one data shard into `dst` (atomically): declared language columns, one row group per episode.

    Returns (episodes written from `anns`, episodes whose existing rows were kept).
    """
    table = pq.read_table(src)
    other = [f.name for f in schema if f.name not in LANGUAGE_COLUMNS]
    present = [c for c in table.column_names if c not in LANGUAGE_COLUMNS]
    if present != other:
        if sorted(present) != sorted(other):
            raise DatasetFormatError(
                f"{src}: columns {present} differ from the dataset's other shards {other}; cannot give every shard "
                "the same schema"
            )
    episodes = _segments(table["episode_index"].to_numpy())
    ts_all = table["timestamp"].to_numpy()
    written: list[int] = []
    kept: list[int] = []
    for stale in dst.parent.glob(f".{dst.name}.tmp-*"):  # left by a crashed run; never a complete file
        stale.unlink(missing_ok=True)
    with atomic_path(dst) as tmp, pq.ParquetWriter(tmp, schema, compression="snappy") as writer:
        for ep, start, stop in episodes:
            timestamps = ts_all[start:stop]
            if ep in anns:
                persistent, events = list(anns[ep].persistent), list(anns[ep].events)
                written.append(ep)
            else:
                persistent, events = _existing_rows(table, start, stop, timestamps)
                if persistent or events:
                    kept.append(ep)
            part = table.slice(start, stop - start)
            arrays = []
            for f in schema:
                if f.name == LANGUAGE_PERSISTENT:
                    arrays.append(_persistent_cells(persistent, stop - start))
                elif f.name == LANGUAGE_EVENTS:
                    arrays.append(_event_cells(events, timestamps, ep, src))
                else:
                    col = part[f.name]
                    if col.type != f.type:
                        try:
                            col = col.cast(f.type)
                        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                            raise DatasetFormatError(
                                f"{src}: column {f.name!r} is {col.type}, other shards have {f.type} ({exc})"
                            ) from exc
                    arrays.append(col)
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=max(stop - start, 1))
    return written, kept


def _write(layout: DatasetLayout, dest_root: Path, anns: dict[int, EpisodeAnnotations], shards: list[Path],
           report: ValidationReport, *, copy_unchanged: bool) -> WriteResult:
    image_keys = [k for k, f in layout.features.items() if f.get("dtype") == "image"]
    schema = _target_schema(pq.read_schema(shards[0]), image_keys)
    by_shard: dict[Path, bool] = {}
    for path in shards:
        eps = set(np.unique(pq.read_table(path, columns=["episode_index"])["episode_index"].to_numpy()).tolist())
        by_shard[path] = bool(eps & set(anns))
    written_shards: list[Path] = []
    written: list[int] = []
    kept: list[int] = []
    for path in shards:
        dst = dest_root / path.relative_to(layout.root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        current = pq.read_schema(path)
        if not by_shard[path] and current.equals(schema, check_metadata=True):
            # nothing new and already in the target schema: keep the file as it is
            if copy_unchanged:
                shutil.copyfile(path, dst)
            kept.extend(_episodes_with_rows(path))
            continue
        w, k = rewrite_shard(path, dst, schema, anns)
        written.extend(w)
        kept.extend(k)
        written_shards.append(dst)
    write_info(dest_root, layout.root / INFO_PATH)
    counts: Counter[str] = Counter()
    for e in written:
        for r in anns[e].rows:
            counts["speech" if r.style is None else r.style] += 1
    logger.info("wrote language columns of %d episode(s) into %d shard(s) under %s", len(written),
                len(written_shards), dest_root)
    return WriteResult(dest_root, tuple(written_shards), tuple(sorted(written)), tuple(sorted(set(kept))),
                       dict(sorted(counts.items())), report)


def _episodes_with_rows(path: Path) -> list[int]:
    table = pq.read_table(path, columns=["episode_index", *LANGUAGE_COLUMNS])
    out = []
    ep_col = table["episode_index"].to_numpy()
    lengths = [np.asarray(table[c].combine_chunks().value_lengths().fill_null(0)) for c in LANGUAGE_COLUMNS]
    for ep, start, stop in _segments(ep_col):
        if any(int(lens[start:stop].sum()) for lens in lengths):
            out.append(ep)
    return out
