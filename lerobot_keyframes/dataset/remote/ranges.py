"""Byte ranges: half-open `(start, end)` pairs, merged, subtracted, and planned from a sample table.

Which bytes a decoder reads for a frame is fixed by the container and FFmpeg's demuxer, not by the decoder's
read size, so the plan comes from the sample table: for a target sample, everything from the sync sample at
or before it through the last sample the decoder must be fed before it outputs the target (its reordering
delay), in decode order. Ranges closer than FFmpeg's short-seek threshold are merged, because FFmpeg reads
through such gaps instead of seeking over them (`avio_seek`: forward seeks within 32 KiB past the buffered
data are served by reading).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .mp4 import SampleTable

Range = tuple[int, int]

# FFmpeg's SHORT_SEEK_THRESHOLD (libavformat/aviobuf.c): a forward seek within this many bytes past the
# buffered data reads through the gap instead of seeking
SHORT_SEEK_BYTES = 32 * 1024


def merge(ranges: Iterable[Range], gap: int = 0) -> list[Range]:
    """Sorted, non-overlapping ranges; ranges at most `gap` bytes apart become one."""
    out: list[list[int]] = []
    for start, end in sorted((int(a), int(b)) for a, b in ranges if b > a):
        if out and start <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def subtract(ranges: Iterable[Range], covered: Sequence[Range]) -> list[Range]:
    """The parts of `ranges` not inside any of `covered` (sorted, non-overlapping)."""
    held = merge(covered)
    starts = [a for a, _ in held]
    out: list[Range] = []
    for start, end in merge(ranges):
        pos = start
        i = max(0, bisect.bisect_right(starts, pos) - 1)
        while pos < end and i < len(held):
            a, b = held[i]
            if b <= pos:
                i += 1
                continue
            if a >= end:
                break
            if a > pos:
                out.append((pos, a))
            pos = max(pos, b)
            i += 1
        if pos < end:
            out.append((pos, end))
    return out


def coalesce(ranges: Iterable[Range], budget: int, keep: int = 1) -> list[Range]:
    """Sorted ranges where the smallest gaps are filled (each filled gap saves one request: the most requests a
    byte budget can save) while the filled bytes stay within `budget`, stopping at `keep` ranges (requests that
    run in parallel anyway). A gap larger than the median range is never filled: a request saved would cost
    more bytes than a typical request moves (sparse frames keep their requests, dense ones share them)."""
    out = merge(ranges)
    if budget <= 0 or len(out) <= keep:
        return out
    typical = int(np.median([b - a for a, b in out]))
    gaps = sorted((out[i + 1][0] - out[i][1], i) for i in range(len(out) - 1))
    filled: set[int] = set()
    for size, i in gaps:
        if size > budget or size > typical or len(out) - len(filled) <= keep:
            break
        budget -= size
        filled.add(i)
    merged: list[Range] = []
    for i, (start, end) in enumerate(out):
        if i and i - 1 in filled:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def total(ranges: Iterable[Range]) -> int:
    return sum(b - a for a, b in ranges)


def needed_samples(table: SampleTable, frames: Iterable[int]) -> np.ndarray:
    """Decode positions of the samples a decoder reads to output the frames (presentation indices) asked."""
    order = table.presentation_order()
    n = len(table)
    keys = np.nonzero(table.keyframe)[0]
    reach = np.maximum.accumulate(order)  # by presentation rank: the last decode position shown so far
    wanted = np.zeros(n, bool)
    for frame in sorted({int(f) for f in frames}):
        sample = int(order[frame])
        # the sync sample at or before it whose frame is not after it (an open GOP's leading frames go further back)
        k = int(np.searchsorted(keys, sample, side="right")) - 1
        while k > 0 and table.pts[keys[k]] > table.pts[sample]:
            k -= 1
        first = int(keys[k]) if k >= 0 else 0
        last = min(n - 1, int(reach[frame]) + table.delay)
        wanted[first : last + 1] = True
    return np.nonzero(wanted)[0]


def sample_ranges(table: SampleTable, samples: Iterable[int], gap: int = SHORT_SEEK_BYTES) -> list[Range]:
    """The byte ranges of these samples, merged where FFmpeg would read through the gap anyway."""
    idx = np.asarray(sorted(set(int(s) for s in samples)), dtype=np.int64)
    if not len(idx):
        return []
    return merge(zip(table.offset[idx].tolist(), table.end[idx].tolist()), gap=gap)
