"""What a review page shows: an episode's rows as spans, timeline marks, VQA pairs and traces, with row ids.

Row ids name a stored row by its place in the dataset: `p<k>` is the k-th row of the episode's
`language_persistent` list, `e<k>` the k-th event in frame order (as `read_dataset_annotations` yields them).
Decisions refer to rows by these ids and also carry the row itself, so applying them to a changed
dataset fails instead of editing the wrong row.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..language.schema import LanguageRow, speech_text
from ..language.validator import EpisodeAnnotations
from ..utils.timeline import nearest_frame_index

STYLE_COLUMNS = ("subtask", "plan", "memory", "task_aug", "motion", "interjection", "speech", "vqa", "trace")
SUBTASK_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f")


def row_ids(ann: EpisodeAnnotations) -> list[tuple[str, LanguageRow]]:
    """(id, row) for every stored row of an episode, persistent rows first."""
    return [(f"p{k}", r) for k, r in enumerate(ann.persistent)] + [(f"e{k}", r) for k, r in enumerate(ann.events)]


def row_record(row: LanguageRow) -> dict[str, Any]:
    """The fields a decision copies from its row (`was`): enough to notice that the dataset changed."""
    return {"style": row.style, "role": row.role, "timestamp": row.timestamp, "camera": row.camera,
            "content": row.content if row.content is not None else speech_text(row)}


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    label: str
    start_frame: int
    end_frame: int  # exclusive
    row_id: str = ""


@dataclass(frozen=True)
class Mark:
    """A point on the timeline (plan, memory, motion, interjection, speech)."""

    t: float
    kind: str
    text: str
    frame: int = 0
    row_id: str = ""


@dataclass(frozen=True)
class VqaItem:
    t: float
    frame: int
    camera: str
    question: str | None
    answer: str | None
    question_id: str = ""
    answer_id: str = ""


@dataclass(frozen=True)
class TraceItem:
    """A `trace` event: a pixel trajectory drawn on one camera's frame."""

    t: float
    frame: int
    camera: str
    content: str | None
    row_id: str = ""


@dataclass
class EpisodeView:
    episode_index: int
    task: str
    fps: float
    timestamps: np.ndarray
    cameras: list[dict[str, Any]]
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    task_aug: list[str] = field(default_factory=list)
    task_aug_ids: list[str] = field(default_factory=list)
    vqa: list[VqaItem] = field(default_factory=list)
    traces: list[TraceItem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)  # the run's quality findings (QualityFinding dicts)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> row_record + frame

    @property
    def duration(self) -> float:
        """End of the last frame (so the last frame has width on the timeline)."""
        if not len(self.timestamps):
            return 1.0
        return float(self.timestamps[-1]) + 1.0 / (self.fps or 30.0)

    def frame_of(self, t: float) -> int:
        """Index of the frame at time `t` (exact for parquet-copied times, else the nearest)."""
        return nearest_frame_index(self.timestamps, t) if len(self.timestamps) else 0


def episode_view(row: Mapping[str, Any], ann: EpisodeAnnotations | None, timestamps: Sequence[float] | np.ndarray,
                 *, errors: Sequence[str] = (), warnings: Sequence[str] = (),
                 quality: Sequence[Mapping[str, Any]] = ()) -> EpisodeView:
    """Turn an episode's stored rows into spans, timeline marks and VQA pairs."""
    if not len(timestamps):
        timestamps = row.get("timestamps")
    ts = np.asarray(timestamps if timestamps is not None else [], dtype=np.float32)
    view = EpisodeView(int(row["episode_index"]), str(row.get("task") or ""), float(row.get("fps") or 30.0), ts,
                       list(row.get("cameras") or []), errors=list(errors), warnings=list(warnings),
                       quality=[dict(f) for f in quality])
    ann = ann or EpisodeAnnotations(view.episode_index)
    ids = {id(r): k for k, r in row_ids(ann)}
    for k, r in row_ids(ann):
        view.rows[k] = {**row_record(r), "frame": view.frame_of(r.timestamp)}
    counts: dict[str, int] = defaultdict(int)
    subtasks = sorted((r for r in ann.persistent if r.style == "subtask"), key=lambda r: r.timestamp)
    for k, r in enumerate(subtasks):
        end = subtasks[k + 1].timestamp if k + 1 < len(subtasks) else view.duration
        end_frame = view.frame_of(end) if k + 1 < len(subtasks) else len(ts)
        view.spans.append(Span(r.timestamp, end, r.content or "", view.frame_of(r.timestamp), max(end_frame, 1),
                               ids[id(r)]))
    for r in ann.persistent:
        counts[r.style or "speech"] += 1
        if r.style == "task_aug":
            view.task_aug.append(r.content or "")
            view.task_aug_ids.append(ids[id(r)])
        elif r.style in ("plan", "memory", "motion"):
            view.marks.append(Mark(r.timestamp, r.style, r.content or "", view.frame_of(r.timestamp), ids[id(r)]))
    pairs: dict[tuple[float, str], dict[str, list[LanguageRow]]] = defaultdict(lambda: {"user": [], "assistant": []})
    for r in ann.events:
        said = speech_text(r)
        if said is not None:
            counts["speech"] += 1
            view.marks.append(Mark(r.timestamp, "speech", said, view.frame_of(r.timestamp), ids[id(r)]))
        elif r.style == "interjection":
            counts["interjection"] += 1
            view.marks.append(Mark(r.timestamp, "interjection", r.content or "", view.frame_of(r.timestamp),
                                   ids[id(r)]))
        elif r.style == "vqa":
            pairs[(r.timestamp, r.camera or "")][r.role if r.role in ("user", "assistant") else "user"].append(r)
        elif r.style == "trace":
            counts["trace"] += 1
            view.traces.append(TraceItem(r.timestamp, view.frame_of(r.timestamp), r.camera or "", r.content,
                                         ids[id(r)]))
        else:
            counts[r.style or "other"] += 1
    for (t, cam), qa in sorted(pairs.items()):
        qs, ans = qa["user"], qa["assistant"]
        counts["vqa"] += max(len(qs), len(ans))
        for k in range(max(len(qs), len(ans))):
            q, a = (qs[k] if k < len(qs) else None), (ans[k] if k < len(ans) else None)
            view.vqa.append(VqaItem(t, view.frame_of(t), cam, q.content if q else None, a.content if a else None,
                                    ids[id(q)] if q else "", ids[id(a)] if a else ""))
    view.marks.sort(key=lambda m: (m.t, m.kind))
    view.traces.sort(key=lambda v: (v.t, v.camera))
    view.counts = {k: counts.get(k, 0) for k in STYLE_COLUMNS}
    return view


# -- VQA geometry --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """A box (x, y, w, h), a point (x, y) or a path (points, starting at x, y) in displayed-image pixels."""

    kind: str  # "box" | "point" | "path"
    label: str
    x: float
    y: float
    w: float = 0.0
    h: float = 0.0
    points: tuple[tuple[float, float], ...] = ()


def _answer_scale(payload: Mapping[str, Any], display: tuple[int, int],
                  native: tuple[int, int] | None) -> tuple[float, float, str]:
    """Factors from an answer's coordinates to `display` pixels, and the convention they were read in."""
    dw, dh = display
    size = payload.get("image_size")
    if payload.get("coords") == "norm1000":
        return dw / 1000.0, dh / 1000.0, "norm1000 (0..1000 of width/height)"
    valid = isinstance(size, (list, tuple)) and len(size) == 2 and all(
        isinstance(v, (int, float)) and v > 0 for v in size)
    base = tuple(size) if valid else native or display
    note = f"pixel of {int(base[0])}x{int(base[1])}" if valid else (
        f"convention not recorded; read as pixels of {int(base[0])}x{int(base[1])}")
    return dw / float(base[0]), dh / float(base[1]), note


def _is_xy(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def vqa_shapes(answer: str | None, display: tuple[int, int], native: tuple[int, int] | None) -> tuple[list[Shape], str]:
    """Boxes/points of a VQA answer in the pixels of a `display`-sized image, plus the convention used.

    "pixel" values are pixels of `image_size` (the model's input), "norm1000" are 0..1000 of width and
    height. Without a recorded convention the answer is read as pixels of the camera's native size.
    """
    try:
        payload = json.loads(answer) if answer else None
    except (TypeError, ValueError):
        return [], "answer is not JSON"
    if not isinstance(payload, dict):
        return [], ""
    sx, sy, note = _answer_scale(payload, display, native)
    shapes: list[Shape] = []
    for det in payload.get("detections") or []:
        box = det.get("bbox") if isinstance(det, dict) else None
        if isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box):
            x1, y1, x2, y2 = box
            shapes.append(Shape("box", str(det.get("label", "")), x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy))
    point = payload.get("point")
    if _is_xy(point):
        shapes.append(Shape("point", str(payload.get("label", "")), point[0] * sx, point[1] * sy))
    return shapes, note


def trace_shape(content: str | None, display: tuple[int, int],
                native: tuple[int, int] | None) -> tuple[Shape | None, str]:
    """The path of a `trace` row in the pixels of a `display`-sized image, plus the convention used.

    Upstream fixes no content format for traces; read, like a keypoint answer, `{"label", "point_format": "xy",
    "points": [[x, y], ...]}` (also under "trace" or "trajectory", or a bare list of [x, y]), with the same
    `coords` / `image_size` conventions as VQA. Anything else is shown as text only, with the reason.
    """
    try:
        payload = json.loads(content) if content else None
    except (TypeError, ValueError):
        return None, "trace is not JSON"
    if isinstance(payload, list):
        payload = {"points": payload}
    if not isinstance(payload, dict):
        return None, "trace is not a JSON object or list"
    points = next((payload[k] for k in ("points", "trace", "trajectory") if k in payload), None)
    if not isinstance(points, list) or len(points) < 2 or not all(_is_xy(p) for p in points):
        return None, "no list of at least two [x, y] points"
    sx, sy, note = _answer_scale(payload, display, native)
    path = tuple((float(x) * sx, float(y) * sy) for x, y in points)
    return Shape("path", str(payload.get("label", "")), path[0][0], path[0][1], points=path), note


