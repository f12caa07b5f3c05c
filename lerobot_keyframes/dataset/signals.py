"""Robot signals of one episode (`observation.state`, `action`, ...) as numeric arrays, and their feature names.

Dataset access, not analysis: the motion keyframe policies and an episode's robot events
(`frames.policies`, `frames.policies.events`) read the robot's own signals here. A LeRobot v3 data parquet
holds one row group per episode, so an episode's columns are read from its row group(s) alone; reads are
cached per (file, mtime, size, episode, columns).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .records import Episode

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

__all__ = ["episode_signals", "feature_names", "read_episode_signals"]

_SIGNAL_CACHE: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
_SIGNAL_CACHE_SIZE = 64
_SIGNAL_LOCK = threading.Lock()
_INFO_CACHE: dict[tuple[str, int], dict[str, Any]] = {}


def _column_to_2d(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A parquet column of fixed-size or variable lists (or scalars) as an (n, d) float64 array."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        if n == 0:
            return np.zeros((0, 0))
        values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        if len(values) % n:
            raise ValueError("rows of unequal length")
        return values.reshape(n, -1)
    return arr.to_numpy(zero_copy_only=False).astype(np.float64).reshape(n, 1)


def _episode_row_groups(pf: pq.ParquetFile, index: int) -> list[int]:
    """The row groups whose `episode_index` statistics include the episode (all of them without statistics)."""
    ep_col = pf.schema_arrow.get_field_index("episode_index")
    groups = []
    for g in range(pf.metadata.num_row_groups):
        st = pf.metadata.row_group(g).column(ep_col).statistics
        if st is None or not st.has_min_max or st.min <= index <= st.max:
            groups.append(g)
    return groups


def read_episode_signals(episode: Episode | Mapping[str, Any], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Numeric columns of one episode from its data parquet, as (length, dim) float64 arrays.

    Reads only the row groups whose `episode_index` statistics include the episode (LeRobot v3 writes
    one row group per episode) and only the requested columns. Keys that are absent, or not numeric,
    are left out.

    Args:
        episode: the episode (or its episode-table row); it must name its `root` and `data_file`.
        keys: the columns to read, e.g. `["observation.state", "action"]`.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ep = Episode.from_row(episode)
    path = ep.data_path
    if path is None:
        raise ValueError(f"episode {ep.episode_index}: no data parquet to read signals from (the row has no "
                         f"root or data_file)")
    stat = path.stat()
    cache_key = (str(path), stat.st_mtime_ns, stat.st_size, ep.episode_index, tuple(keys))
    with _SIGNAL_LOCK:
        hit = _SIGNAL_CACHE.get(cache_key)
        if hit is not None:
            _SIGNAL_CACHE.move_to_end(cache_key)
            return hit
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    present = [k for k in keys if k in names]
    out: dict[str, np.ndarray] = {}
    if present:
        table = pf.read_row_groups(_episode_row_groups(pf, ep.episode_index), columns=[*present, "episode_index"])
        table = table.filter(pc.equal(table["episode_index"], ep.episode_index))
        for k in present:
            try:
                out[k] = _column_to_2d(table[k])
            except (ValueError, TypeError) as exc:
                logger.debug("%s: column %r of episode %d is not numeric (%s)", path, k, ep.episode_index, exc)
    with _SIGNAL_LOCK:
        _SIGNAL_CACHE[cache_key] = out
        while len(_SIGNAL_CACHE) > _SIGNAL_CACHE_SIZE:
            _SIGNAL_CACHE.popitem(last=False)
    return out


def episode_signals(episode: Episode, keys: Sequence[str], carried: Mapping[str, Any] | None = None
                    ) -> dict[str, np.ndarray]:
    """Signals of `episode` with one row per frame: those `carried` by a row itself (frame-level rows grouped
    per episode bring their columns along), else read from the data parquet. Keys found in neither are left
    out, as are values whose length is not the episode's frame count."""
    length = len(episode.timestamps)
    out: dict[str, np.ndarray] = {}
    missing = []
    for k in keys:
        value = carried.get(k) if carried is not None else None
        if value is not None and len(value) == length:
            try:
                out[k] = np.asarray(value, dtype=np.float64).reshape(length, -1)
                continue
            except (ValueError, TypeError):
                pass
        missing.append(k)
    if missing and episode.data_path is not None:
        read = read_episode_signals(episode, missing)
        out.update({k: v for k, v in read.items() if len(v) == length})
    return out


def feature_names(root: str | Path | None, key: str) -> list[str] | None:
    """`meta/info.json` features[key]["names"] as a flat list (lerobot writes a list, older files a dict of one);
    None when the dataset does not name them."""
    if not root:
        return None
    path = Path(root) / "meta" / "info.json"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    info = _INFO_CACHE.get((str(path), stamp))
    if info is None:
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        _INFO_CACHE[(str(path), stamp)] = info
    names = (info.get("features") or {}).get(key, {}).get("names")
    if isinstance(names, dict):
        lists = [v for v in names.values() if isinstance(v, list)]
        names = lists[0] if len(lists) == 1 else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return list(names)
