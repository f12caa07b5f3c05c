"""Rows in: `datasets`/Ray batches as Python values, frame-level datasets grouped per episode, and the
typed `Episode` of a grouped frame-level row (completed from its dataset root's metadata)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dataset.records import Episode

if TYPE_CHECKING:
    from datasets import Dataset


def to_python(value: Any) -> Any:
    """numpy / pandas / arrow containers (Ray batches) -> Python lists, recursively for object arrays."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return [to_python(v) for v in value]
        return value.tolist()
    if hasattr(value, "to_pylist"):
        return value.to_pylist()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    if isinstance(value, list):
        return [to_python(v) if isinstance(v, np.ndarray) else v for v in value]
    return value


def grouped_episode(row: Mapping[str, Any], root: str, dataset_rows: Mapping[int, Mapping[str, Any]],
                    cameras: Sequence[str] | None) -> Episode:
    """The `Episode` of one frame-level row grouped per episode (`group_by_episode`): its record from the
    dataset's episode rows, with the row's own timestamps and per-frame columns (the robot's signals,
    which motion policies read from `Episode.signals`), sorted by time."""
    eps = row.get("episode_index")
    if not isinstance(eps, (list, tuple)) or not eps:
        raise ValueError("frame-level rows must be grouped per episode first: use group_by_episode(dataset)")
    index = int(eps[0])
    if any(int(e) != index for e in eps):
        raise ValueError(
            f"a grouped row mixes episodes {sorted(set(int(e) for e in eps))}; group with group_by_episode(dataset)"
        )
    if index not in dataset_rows:
        raise ValueError(f"{root}: episode {index} of the frame rows is not in the dataset")
    timestamps = np.asarray(row["timestamp"], dtype=np.float32)
    order = np.argsort(timestamps, kind="stable")
    signals: dict[str, list[Any]] = {}
    for key, value in row.items():
        if key not in ("timestamp", "episode_index") and isinstance(value, (list, tuple)) and len(value) == len(order):
            first = value[0]
            if isinstance(first, (int, float, list, tuple)) and not isinstance(first, bool):
                signals[key] = [value[i] for i in order]
    episode = Episode.from_row(dataset_rows[index])
    episode = episode.with_cameras(cameras) if cameras is not None else episode
    return dataclasses.replace(episode, timestamps=timestamps[order], signals=signals)


# -- frame-level datasets ---------------------------------------------------------------------------------
def group_by_episode(dataset: Dataset, column: str = "episode_index", *, use_batch: bool | None = None) -> Dataset:
    """One row per episode from a frame-level dataset: every column becomes the list of its frames' values.

    Uses `Dataset.batch(by_column=...)` when this `datasets` version has it (>= 4.x), else an Arrow
    fallback (which holds the whole table in memory). Frames are sorted by (`column`, `index`/`frame_index`) first when an episode's rows are not
    contiguous.
    """
    import inspect

    from datasets import Dataset as HFDataset

    if column not in dataset.column_names:
        raise ValueError(f"the dataset has no {column!r} column to group by (columns: {dataset.column_names})")
    values = np.asarray(dataset.with_format("numpy")[column])
    if len(values) and (np.diff(values) != 0).sum() + 1 != len(np.unique(values)):
        order = [c for c in (column, "index", "frame_index") if c in dataset.column_names]
        dataset = dataset.sort(order)
    if use_batch is None:
        use_batch = "by_column" in inspect.signature(HFDataset.batch).parameters
    if use_batch:
        return dataset.batch(batch_size=1000, by_column=column)  # 1000: rows read per step, not group size
    return _group_arrow(dataset, column)


def _group_arrow(dataset: Dataset, column: str) -> Dataset:
    import pyarrow as pa
    from datasets import Dataset as HFDataset
    from datasets import DatasetInfo, Features, List
    from datasets.table import InMemoryTable

    table = dataset.with_format("arrow")[:]
    values = table[column].to_numpy()
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.zeros(0, np.int64)
    offsets = pa.array(np.r_[starts, len(values)].astype(np.int32), pa.int32())
    arrays = [pa.ListArray.from_arrays(offsets, table[name].combine_chunks()) for name in table.column_names]
    grouped = pa.Table.from_arrays(arrays, names=table.column_names)
    features = Features({name: List(feature) for name, feature in dataset.features.items()})
    return HFDataset(InMemoryTable(grouped.cast(features.arrow_schema)), info=DatasetInfo(features=features))
