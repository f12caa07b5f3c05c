"""Frame timelines: the nearest frame to a time, and evenly spread picks. One implementation for the package.

Ties go to the earlier frame everywhere (a time exactly between two frames shows the one already on screen).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def nearest_frame_indices(timestamps: Sequence[float] | np.ndarray, times: Iterable[float] | np.ndarray
                          ) -> np.ndarray:
    """Index of the frame nearest to each time in a sorted timeline (int64; -1 where there are no frames)."""
    ts = np.asarray(timestamps, dtype=np.float64)
    t = np.asarray(times if isinstance(times, np.ndarray) else list(times), dtype=np.float64)
    if len(ts) == 0:
        return np.full(t.shape, -1, dtype=np.int64)
    right = np.minimum(np.searchsorted(ts, t, side="left"), len(ts) - 1)
    left = np.maximum(right - 1, 0)
    pick_left = np.abs(t - ts[left]) <= np.abs(ts[right] - t)
    return np.where(pick_left, left, right).astype(np.int64)


def nearest_frame_index(timestamps: Sequence[float] | np.ndarray, t: float) -> int:
    """Index of the frame nearest to `t` in a sorted, non-empty timeline."""
    if len(timestamps) == 0:
        raise ValueError("no frames: the timeline is empty")
    return int(nearest_frame_indices(timestamps, np.asarray([t]))[0])


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """`k` distinct positions in `range(n)`, evenly spread, first and last included (all of them when k >= n).

    k == 1 picks the middle. Positions are sorted int64.
    """
    if n <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if k == 1:
        return np.asarray([(n - 1) // 2], dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def split_evenly(n: int, parts: int) -> list[tuple[int, int]]:
    """`[lo, hi)` bounds cutting `range(n)` into `parts` contiguous, near-equal, non-empty pieces."""
    parts = max(1, min(parts, n))
    if n <= 0:
        return []
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
