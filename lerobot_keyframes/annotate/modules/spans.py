"""Subtask spans from model output, cleaned by code: snapped to frames, limited, stitched to cover the episode.

A model's spans are a suggestion. Whatever it returns (unsorted, overlapping, out of range, empty
labels, too short, too many), the result here is a list of spans that starts on the first frame, covers
every frame exactly once, respects `min_subtask_seconds` and `plan_max_steps`, and whose start times are
the episode's own float32 frame timestamps (copied, never recomputed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...utils.timeline import nearest_frame_index


@dataclass(frozen=True)
class Span:
    """A subtask: `text` active from frame `start_index` (inclusive) to `end_index` (exclusive)."""

    text: str
    start_index: int
    end_index: int
    start: float  # the episode's float32 frame timestamp at start_index, as a Python float
    end: float  # time of end_index (or episode end) in seconds

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end,
                "start_index": self.start_index, "end_index": self.end_index}


def normalize_label(text: str) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip().strip(".").strip()
    return text[:1].lower() + text[1:] if text else text


def _same_action(a: str, b: str) -> bool:
    return normalize_label(a).lower() == normalize_label(b).lower()


def clean_spans(
    raw: Iterable[Any],
    timestamps: Sequence[float] | np.ndarray,
    fps: float,
    *,
    min_seconds: float,
    max_steps: int,
    fallback_text: str,
) -> list[Span]:
    """Turn raw model spans ({"text", "start", "end"}) into a clean cover of the episode."""
    ts = np.asarray(timestamps, dtype=np.float32)
    n = len(ts)
    if n == 0:
        return []
    duration = float(ts[-1]) + 1.0 / fps
    candidates: list[tuple[float, str]] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        text = normalize_label(item.get("text") or "")
        try:
            start = float(item.get("start"))
            end = float(item.get("end", start))
        except (TypeError, ValueError):
            continue
        if not text or not math.isfinite(start) or not math.isfinite(end):
            continue
        start = min(max(start, 0.0), duration)
        end = min(max(end, 0.0), duration)
        if end < start:
            start, end = end, start
        if start >= duration:
            continue
        candidates.append((start, text))
    if not candidates:
        return [_span(fallback_text, 0, n, ts, fps)]
    candidates.sort(key=lambda c: c[0])

    # snap starts to frames; the first span always starts on frame 0; one label per start frame
    starts: list[tuple[int, str]] = []
    for k, (start, text) in enumerate(candidates):
        idx = 0 if k == 0 else nearest_frame_index(ts, start)
        if starts and idx <= starts[-1][0]:
            continue  # overlapping or duplicate start: the earlier span keeps the frame
        if starts and _same_action(starts[-1][1], text):
            continue  # the same action split in two (e.g. at a window edge): keep it whole
        starts.append((idx, text))

    min_frames = max(1, int(round(min_seconds * fps)))
    starts = _merge_short(starts, n, min_frames)
    while len(starts) > max(1, max_steps):
        starts = _merge_shortest(starts, n)
    return [
        _span(text, idx, starts[k + 1][0] if k + 1 < len(starts) else n, ts, fps)
        for k, (idx, text) in enumerate(starts)
    ]


def _lengths(starts: list[tuple[int, str]], n: int) -> list[int]:
    return [(starts[k + 1][0] if k + 1 < len(starts) else n) - s for k, (s, _) in enumerate(starts)]


def _drop(starts: list[tuple[int, str]], k: int, n: int) -> list[tuple[int, str]]:
    """Merge span k into a neighbour: drop its boundary (or the next one when k is the first span)."""
    if k == 0:
        # the first span keeps frame 0, takes the next span's frames and the label of the longer one
        lengths = _lengths(starts, n)
        keep = starts[1][1] if lengths[1] > lengths[0] else starts[0][1]
        return [(0, keep), *starts[2:]]
    return starts[:k] + starts[k + 1 :]


def _merge_short(starts: list[tuple[int, str]], n: int, min_frames: int) -> list[tuple[int, str]]:
    while len(starts) > 1:
        lengths = _lengths(starts, n)
        short = [k for k, length in enumerate(lengths) if length < min_frames]
        if not short:
            break
        k = min(short, key=lambda j: (lengths[j], j))
        starts = _drop(starts, k, n)
    return starts


def _merge_shortest(starts: list[tuple[int, str]], n: int) -> list[tuple[int, str]]:
    lengths = _lengths(starts, n)
    k = min(range(len(starts)), key=lambda j: (lengths[j], j))
    return _drop(starts, k, n)


def _span(text: str, start_index: int, end_index: int, ts: np.ndarray, fps: float) -> Span:
    end = float(ts[end_index]) if end_index < len(ts) else float(ts[-1]) + 1.0 / fps
    return Span(text=text, start_index=start_index, end_index=end_index, start=float(ts[start_index]), end=end)


def merge_windows(windows: Sequence[Sequence[Any]]) -> list[Any]:
    """Concatenate per-window raw spans; an action running across a window edge stays one span.

    Each window's spans are in absolute episode time. At every edge, when the last span of a window
    and the first of the next name the same action, they are joined into one.
    """
    out: list[dict[str, Any]] = []
    for window in windows:
        items = [dict(s) for s in window if isinstance(s, dict)]
        if out and items and _same_action(out[-1].get("text", ""), items[0].get("text", "")):
            out[-1]["end"] = items[0].get("end", out[-1].get("end"))
            items = items[1:]
        out.extend(items)
    return out


def format_plan(steps: Sequence[str]) -> str:
    """Numbered remaining steps, the `plan` row's content."""
    return "\n".join(f"{k}. {normalize_label(s)}" for k, s in enumerate(steps, 1))
