"""Rewrite data shards with the two language columns: one declared schema for every shard, one row group per episode.

lerobot infers the schema per shard, and mixed shards break loaders that read without features; here every
shard gets the first shard's other columns plus the declared language types. Episodes without new rows keep
the rows they already have (a partial re-run never wipes the other episodes of a shard).
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..dataset.errors import DatasetFormatError
from ..utils.files import atomic_path
from .annotations import EpisodeAnnotations
from .schema import (
    LANGUAGE_COLUMNS,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    LanguageRow,
    column_arrow_type,
    event_sort_key,
    language_features,
    persistent_sort_key,
    rows_to_struct_array,
)
from .stored import event_rows, persistent_rows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardsWritten:
    """What `write_shards` put under its destination root."""

    shards: tuple[Path, ...]  # rewritten shards, relative to the destination root
    episodes_written: tuple[int, ...]  # episodes whose rows came from the annotations
    episodes_kept: tuple[int, ...]  # episodes that kept the rows they had
    rows_per_style: dict[str, int]  # new rows by style ("speech" for speech atoms)


def target_schema(first: pa.Schema, image_keys: Iterable[str] = ()) -> pa.Schema:
    """The one schema every shard gets: the first shard's other columns (types, order) + declared language types.

    Language columns keep their position when the dataset already has them, else they are appended. The
    `huggingface` metadata is rebuilt so `datasets` readers without explicit features see the same features.
    """
    from datasets import Features, Image

    fields = [pa.field(f.name, column_arrow_type(f.name)) if f.name in LANGUAGE_COLUMNS else f for f in first]
    fields += [pa.field(col, column_arrow_type(col)) for col in LANGUAGE_COLUMNS if col not in first.names]
    base = pa.schema([f for f in first if f.name not in LANGUAGE_COLUMNS], metadata=first.metadata)
    features = Features.from_arrow_schema(base)
    for key in image_keys:  # image cameras stored in the parquet decode as images, not {bytes, path} dicts
        if key in features and isinstance(features[key], dict) and set(features[key]) == {"bytes", "path"}:
            features[key] = Image()
    lang = language_features()
    feats = Features({f.name: (lang[f.name] if f.name in lang else features[f.name]) for f in fields})
    metadata = {k: v for k, v in (first.metadata or {}).items() if k not in (b"huggingface", b"ARROW:schema")}
    metadata.update(feats.arrow_schema.metadata or {})
    return pa.schema(fields, metadata=metadata)


def segments(episode_col: np.ndarray) -> list[tuple[int, int, int]]:
    """(episode, start, stop) runs of the episode_index column, in file order."""
    if len(episode_col) == 0:
        return []
    starts = np.concatenate(([0], np.nonzero(np.diff(episode_col))[0] + 1))
    stops = np.append(starts[1:], len(episode_col))
    return [(int(episode_col[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def persistent_cells(rows: Sequence[LanguageRow], n_frames: int) -> pa.Array:
    """The same sorted list on every frame of the episode."""
    rows = sorted(rows, key=persistent_sort_key)
    values = rows_to_struct_array(rows, LANGUAGE_PERSISTENT)
    n = len(rows)
    offsets = pa.array(np.arange(n_frames + 1, dtype=np.int32) * n, type=pa.int32())
    if n:
        values = values.take(pa.array(np.tile(np.arange(n, dtype=np.int64), n_frames)))
    return pa.ListArray.from_arrays(offsets, values, type=column_arrow_type(LANGUAGE_PERSISTENT))


def event_cells(rows: Sequence[LanguageRow], timestamps: np.ndarray, episode: int, path: Path) -> pa.Array:
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


def _check_columns(src: Path, table: pa.Table, schema: pa.Schema) -> None:
    other = [f.name for f in schema if f.name not in LANGUAGE_COLUMNS]
    present = [c for c in table.column_names if c not in LANGUAGE_COLUMNS]
    if sorted(present) != sorted(other):
        raise DatasetFormatError(
            f"{src}: columns {present} differ from the dataset's other shards {other}; cannot give every shard "
            "the same schema"
        )


def _cast_column(src: Path, col: pa.ChunkedArray, f: pa.Field) -> pa.ChunkedArray:
    if col.type == f.type:
        return col
    try:
        return col.cast(f.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DatasetFormatError(f"{src}: column {f.name!r} is {col.type}, other shards have {f.type} ({exc})") from exc


def _episode_table(src: Path, part: pa.Table, schema: pa.Schema, ep: int, persistent: Sequence[LanguageRow],
                   events: Sequence[LanguageRow], timestamps: np.ndarray) -> pa.Table:
    """One episode's frames in `schema`, its language columns built from `persistent` and `events`."""
    arrays = []
    for f in schema:
        if f.name == LANGUAGE_PERSISTENT:
            arrays.append(persistent_cells(persistent, part.num_rows))
        elif f.name == LANGUAGE_EVENTS:
            arrays.append(event_cells(events, timestamps, ep, src))
        else:
            arrays.append(_cast_column(src, part[f.name], f))
    return pa.Table.from_arrays(arrays, schema=schema)


def rewrite_shard(src: Path, dst: Path, schema: pa.Schema, anns: Mapping[int, EpisodeAnnotations]
                  ) -> tuple[list[int], list[int]]:
    """Rewrite one data shard into `dst` (atomically): declared language columns, one row group per episode.

    Returns (episodes written from `anns`, episodes whose existing rows were kept).
    """
    table = pq.read_table(src)
    _check_columns(src, table, schema)
    ts_all = table["timestamp"].to_numpy()
    written: list[int] = []
    kept: list[int] = []
    for stale in dst.parent.glob(f".{dst.name}.tmp-*"):  # left by a crashed run; never a complete file
        stale.unlink(missing_ok=True)
    with atomic_path(dst) as tmp, pq.ParquetWriter(tmp, schema, compression="snappy") as writer:
        for ep, start, stop in segments(table["episode_index"].to_numpy()):
            timestamps = ts_all[start:stop]
            if ep in anns:
                persistent, events = list(anns[ep].persistent), list(anns[ep].events)
                written.append(ep)
            else:
                persistent = persistent_rows(table, start, stop - start)
                events = event_rows(table, start, stop - start, timestamps)
                if persistent or events:
                    kept.append(ep)
            part = _episode_table(src, table.slice(start, stop - start), schema, ep, persistent, events, timestamps)
            writer.write_table(part, row_group_size=max(stop - start, 1))
    return written, kept


def write_shards(root: Path, dest_root: Path, anns: Mapping[int, EpisodeAnnotations], shards: Sequence[Path],
                 image_keys: Iterable[str] = (), *, copy_unchanged: bool) -> ShardsWritten:
    """Rewrite every shard of `root` that gains rows or changes schema into the same place under `dest_root`.

    A shard with nothing new and already in the target schema is kept as it is (copied with `copy_unchanged`).
    """
    schema = target_schema(pq.read_schema(shards[0]), image_keys)
    written_shards: list[Path] = []
    written: list[int] = []
    kept: list[int] = []
    for path in shards:
        dst = dest_root / path.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        episodes = set(pq.read_table(path, columns=["episode_index"])["episode_index"].to_numpy().tolist())
        if not episodes & set(anns) and pq.read_schema(path).equals(schema, check_metadata=True):
            if copy_unchanged:
                shutil.copyfile(path, dst)
            kept.extend(_episodes_with_rows(path))
            continue
        try:
            w, k = rewrite_shard(path, dst, schema, anns)
        except OSError as exc:  # disk full, file too large, ...: name the shard (pyarrow's message names none)
            raise OSError(exc.errno, f"{path}: cannot write its annotated copy "
                                     f"({exc.strerror or ' '.join(str(exc).split())})") from exc
        written.extend(w)
        kept.extend(k)
        written_shards.append(dst.relative_to(dest_root))
    counts = Counter("speech" if r.style is None else r.style for e in written for r in anns[e].rows)
    # the root is a temporary one here (renamed in once complete): the run names the real one
    logger.info("wrote language columns of %d episode(s) into %d shard(s)", len(written), len(written_shards))
    return ShardsWritten(tuple(written_shards), tuple(sorted(written)), tuple(sorted(set(kept))),
                         dict(sorted(counts.items())))


def _episodes_with_rows(path: Path) -> list[int]:
    table = pq.read_table(path, columns=["episode_index", *LANGUAGE_COLUMNS])
    lengths = [np.asarray(table[c].combine_chunks().value_lengths().fill_null(0)) for c in LANGUAGE_COLUMNS]
    return [ep for ep, start, stop in segments(table["episode_index"].to_numpy())
            if any(int(lens[start:stop].sum()) for lens in lengths)]
