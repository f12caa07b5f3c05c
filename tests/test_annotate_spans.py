"""Span cleaning: whatever the model says, the result covers the episode with exact frame times."""

from __future__ import annotations

import numpy as np
import pytest

from lerobot_keyframes.annotate.modules.spans import clean_spans, format_plan, merge_windows
from lerobot_keyframes.utils.timeline import nearest_frame_index

FPS = 30.0
TS = (np.arange(180) / np.float32(FPS)).astype(np.float32)  # 6 s, float32 like lerobot's parquet


def _check_cover(spans) -> None:
    n = len(TS)
    assert spans[0].start_index == 0
    assert spans[-1].end_index == n
    for a, b in zip(spans, spans[1:]):
        assert a.end_index == b.start_index
    for s in spans:
        assert np.float32(s.start) == TS[s.start_index]  # copied from the parquet, bit for bit
        assert s.text


def test_good_spans_are_kept_and_snapped() -> None:
    raw = [
        {"text": "Pick up the red cube.", "start": 0.0, "end": 2.02},
        {"text": "place the cube on the pad", "start": 2.02, "end": 4.5},
        {"text": "retreat", "start": 4.5, "end": 6.0},
    ]
    spans = clean_spans(raw, TS, FPS, min_seconds=1.0, max_steps=8, fallback_text="task")
    _check_cover(spans)
    assert [s.text for s in spans] == ["pick up the red cube", "place the cube on the pad", "retreat"]
    assert [s.start_index for s in spans] == [0, 61, 135]


def test_garbage_is_cleaned() -> None:
    raw = [
        {"text": "late", "start": 99.0, "end": 120.0},  # entirely after the episode: dropped
        {"text": "b", "start": 3.0, "end": 1.0},  # reversed: becomes [1, 3]
        {"text": "", "start": 1.0, "end": 2.0},  # empty label
        {"text": "a", "start": -5.0, "end": 2.0},  # before the start: clamped to 0
        {"text": "c", "start": 3.0, "end": 4.0},
        {"text": "e", "start": 3.01, "end": 4.0},  # snaps to c's frame: the earlier span keeps it
        {"text": "nan", "start": float("nan"), "end": 1.0},
        "not a dict",
        {"text": "d", "start": "x"},
    ]
    spans = clean_spans(raw, TS, FPS, min_seconds=0.5, max_steps=8, fallback_text="task")
    _check_cover(spans)
    assert [s.text for s in spans] == ["a", "b", "c"]
    assert [s.start_index for s in spans] == [0, 30, 90]


def test_nothing_usable_falls_back_to_one_span() -> None:
    spans = clean_spans([{"text": ""}], TS, FPS, min_seconds=1.0, max_steps=8, fallback_text="do the task")
    _check_cover(spans)
    assert [s.text for s in spans] == ["do the task"]


def test_min_seconds_and_max_steps_are_enforced_by_code() -> None:
    raw = [{"text": f"step {k}", "start": k * 0.2, "end": k * 0.2 + 0.2} for k in range(30)]
    spans = clean_spans(raw, TS, FPS, min_seconds=1.0, max_steps=4, fallback_text="t")
    _check_cover(spans)
    assert len(spans) <= 4
    assert all(s.end_index - s.start_index >= 30 for s in spans)


def test_short_first_span_merges_forward() -> None:
    raw = [{"text": "tiny", "start": 0.0, "end": 0.1}, {"text": "long action", "start": 0.1, "end": 6.0}]
    spans = clean_spans(raw, TS, FPS, min_seconds=1.0, max_steps=8, fallback_text="t")
    _check_cover(spans)
    assert [s.text for s in spans] == ["long action"]


def test_window_edges_do_not_split_an_action() -> None:
    w1 = [{"text": "reach", "start": 0.0, "end": 1.5}, {"text": "Pick up the cube", "start": 1.5, "end": 3.0}]
    w2 = [{"text": "pick up the cube", "start": 3.0, "end": 3.8}, {"text": "place", "start": 3.8, "end": 6.0}]
    merged = merge_windows([w1, w2])
    assert [m["text"] for m in merged] == ["reach", "Pick up the cube", "place"]
    assert merged[1]["end"] == 3.8
    spans = clean_spans(merged, TS, FPS, min_seconds=0.5, max_steps=8, fallback_text="t")
    _check_cover(spans)
    assert len(spans) == 3


@pytest.mark.parametrize(("t", "expected"), [(0.0, 0), (1 / 30 - 1e-7, 1), (1 / 30 + 1e-7, 1), (0.049, 1), (0.051, 2), (99.0, 179)])
def test_nearest_frame(t: float, expected: int) -> None:
    assert nearest_frame_index(TS, t) == expected


def test_format_plan() -> None:
    assert format_plan(["Pick up the cube.", "place it"]) == "1. pick up the cube\n2. place it"
