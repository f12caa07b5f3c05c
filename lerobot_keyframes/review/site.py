"""The static review site: an index of episodes and one page per episode, no server and no network.

Everything a page needs is in the output folder: inline CSS/JS, small JPEG thumbnails under `assets/`,
optional PNG timelines under `timelines/`. Frames are decoded with one batched `frames_at` call per
(episode, camera) at exact parquet timestamps; VQA boxes and points are drawn as SVG over the frame,
converted from the recorded convention (`pixel` of `image_size`, or `norm1000`) to the displayed image.
"""

from __future__ import annotations

import html
import json
import logging
import multiprocessing
import os
import re
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..language.schema import LanguageRow, speech_text
from ..language.validator import EpisodeAnnotations
from .config import ReviewConfig

logger = logging.getLogger(__name__)

STYLE_COLUMNS = ("subtask", "plan", "memory", "task_aug", "motion", "interjection", "speech", "vqa", "trace")
SUBTASK_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948", "#9c755f")
_MIN_AUTO_PARALLEL = 6  # episodes; below this a process pool costs more than it saves


# -- what an episode page shows ----------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    start: float
    end: float
    label: str
    start_frame: int
    end_frame: int  # exclusive


@dataclass(frozen=True)
class Mark:
    """A point on the timeline (plan, memory, motion, interjection, speech)."""

    t: float
    kind: str
    text: str


@dataclass(frozen=True)
class VqaItem:
    t: float
    frame: int
    camera: str
    question: str | None
    answer: str | None


@dataclass(frozen=True)
class TraceItem:
    """A `trace` event: a pixel trajectory drawn on one camera's frame."""

    t: float
    frame: int
    camera: str
    content: str | None


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
    vqa: list[VqaItem] = field(default_factory=list)
    traces: list[TraceItem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """End of the last frame (so the last frame has width on the timeline)."""
        if not len(self.timestamps):
            return 1.0
        return float(self.timestamps[-1]) + 1.0 / (self.fps or 30.0)

    def frame_of(self, t: float) -> int:
        """Index of the frame at time `t` (exact for parquet-copied times, else the nearest)."""
        ts = self.timestamps
        if not len(ts):
            return 0
        return int(np.argmin(np.abs(ts.astype(np.float64) - float(t))))


def episode_view(row: Mapping[str, Any], ann: EpisodeAnnotations | None, timestamps: Sequence[float] | np.ndarray,
                 *, errors: Sequence[str] = (), warnings: Sequence[str] = ()) -> EpisodeView:
    """Turn an episode's stored rows into spans, timeline marks and VQA pairs."""
    if not len(timestamps):
        timestamps = row.get("timestamps")
    ts = np.asarray(timestamps if timestamps is not None else [], dtype=np.float32)
    view = EpisodeView(int(row["episode_index"]), str(row.get("task") or ""), float(row.get("fps") or 30.0), ts,
                       list(row.get("cameras") or []), errors=list(errors), warnings=list(warnings))
    ann = ann or EpisodeAnnotations(view.episode_index)
    counts: dict[str, int] = defaultdict(int)
    subtasks = sorted((r for r in ann.persistent if r.style == "subtask"), key=lambda r: r.timestamp)
    for k, r in enumerate(subtasks):
        end = subtasks[k + 1].timestamp if k + 1 < len(subtasks) else view.duration
        end_frame = view.frame_of(end) if k + 1 < len(subtasks) else len(ts)
        view.spans.append(Span(r.timestamp, end, r.content or "", view.frame_of(r.timestamp), max(end_frame, 1)))
    for r in ann.persistent:
        counts[r.style or "speech"] += 1
        if r.style == "task_aug":
            view.task_aug.append(r.content or "")
        elif r.style in ("plan", "memory", "motion"):
            view.marks.append(Mark(r.timestamp, r.style, r.content or ""))
    pairs: dict[tuple[float, str], dict[str, list[LanguageRow]]] = defaultdict(lambda: {"user": [], "assistant": []})
    for r in ann.events:
        said = speech_text(r)
        if said is not None:
            counts["speech"] += 1
            view.marks.append(Mark(r.timestamp, "speech", said))
        elif r.style == "interjection":
            counts["interjection"] += 1
            view.marks.append(Mark(r.timestamp, "interjection", r.content or ""))
        elif r.style == "vqa":
            pairs[(r.timestamp, r.camera or "")][r.role if r.role in ("user", "assistant") else "user"].append(r)
        elif r.style == "trace":
            counts["trace"] += 1
            view.traces.append(TraceItem(r.timestamp, view.frame_of(r.timestamp), r.camera or "", r.content))
        else:
            counts[r.style or "other"] += 1
    for (t, cam), qa in sorted(pairs.items()):
        qs, ans = qa["user"], qa["assistant"]
        counts["vqa"] += max(len(qs), len(ans))
        for k in range(max(len(qs), len(ans))):
            view.vqa.append(VqaItem(t, view.frame_of(t), cam, qs[k].content if k < len(qs) else None,
                                    ans[k].content if k < len(ans) else None))
    view.marks.sort(key=lambda m: (m.t, m.kind))
    view.traces.sort(key=lambda v: (v.t, v.camera))
    view.counts = {k: counts.get(k, 0) for k in STYLE_COLUMNS}
    return view


# -- VQA geometry ------------------------------------------------------------------------------------
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


# -- frames ------------------------------------------------------------------------------------------
def _spread(lo: int, hi: int, k: int) -> list[int]:
    """k frame indices spread evenly over [lo, hi)."""
    if hi <= lo or k <= 0:
        return []
    return sorted({int(round(v)) for v in np.linspace(lo, hi - 1, k)})


def camera_slug(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key.removeprefix("observation.images."))


def episode_dir_name(episode_index: int) -> str:
    return f"episode_{episode_index:06d}"


def _wanted_frames(view: EpisodeView, camera: str, config: ReviewConfig) -> tuple[list[int], set[int]]:
    """Frames to decode for a camera (thumbnails, span strips, VQA, traces) and which of them are shown large."""
    n = len(view.timestamps)
    wanted = set(_spread(0, n, config.thumbs_per_camera))
    for s in view.spans:
        wanted.update(_spread(s.start_frame, s.end_frame, config.strip_frames))
    large = {v.frame for v in [*view.vqa, *view.traces] if v.camera == camera}
    return sorted(wanted | large), large


def _resize(image: Any, width: int) -> Any:
    from PIL import Image

    if image.width <= width:
        return image
    return image.resize((width, max(1, round(image.height * width / image.width))), Image.Resampling.BILINEAR)


def _to_pil(frames: Any) -> list[Any]:
    """PIL images of a `Frames` batch, converted in one tensor op (per-frame `to_pil` copies N times)."""
    from PIL import Image

    data = frames.data
    if isinstance(data, list):
        return frames.to_pil()
    arr = data.permute(0, 2, 3, 1).contiguous().numpy()
    return [Image.fromarray(a) for a in arr]


def decode_episode_images(view: EpisodeView, provider: Any, row: Mapping[str, Any], assets: Path,
                          config: ReviewConfig) -> dict[str, dict[str, Any]]:
    """Write the episode's JPEGs; per camera: {"thumbs": {frame: relpath}, "large": {frame: (relpath, w, h)},
    "native": (w, h), "first": PIL image of the first thumbnail frame or None}."""
    out: dict[str, dict[str, Any]] = {}
    for cam in view.cameras:
        key = cam["key"]
        frames, vqa = _wanted_frames(view, key, config)
        info: dict[str, Any] = {"thumbs": {}, "large": {}, "native": (cam.get("width"), cam.get("height")),
                                "pil": {}}
        out[key] = info
        if not frames or provider is None:
            continue
        times = [float(view.timestamps[i]) for i in frames]
        try:
            decoded = _to_pil(provider.frames_at(row, times, key))
        except Exception as exc:  # a broken camera must not lose the whole review
            logger.warning("episode %d camera %s: frames not decoded: %s", view.episode_index, key, exc)
            continue
        cam_dir = assets / camera_slug(key)
        cam_dir.mkdir(parents=True, exist_ok=True)
        rel = f"{camera_slug(key)}"
        for idx, image in zip(frames, decoded):
            if image is None:
                continue
            info["native"] = (image.width, image.height)
            small = _resize(image, config.thumb_width)
            small.save(cam_dir / f"{idx:06d}.jpg", quality=config.jpeg_quality)
            info["thumbs"][idx] = f"{rel}/{idx:06d}.jpg"
            info["pil"][idx] = small
            if idx in vqa:
                large = _resize(image, config.vqa_width)
                large.save(cam_dir / f"{idx:06d}_vqa.jpg", quality=config.jpeg_quality)
                info["large"][idx] = (f"{rel}/{idx:06d}_vqa.jpg", large.width, large.height)
    return out


# -- HTML --------------------------------------------------------------------------------------------
CSS = """
*{box-sizing:border-box}body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:16px 24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:20px 0 8px}a{color:#1f5fa8}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f0f0f0}td.num{text-align:right}.ok{color:#1a7f37}.err{color:#c62828;font-weight:600}.warn{color:#a86b00}
nav.links{display:flex;gap:16px;margin:4px 0 12px}.muted{color:#777}
.timeline{display:grid;grid-template-columns:120px 1fr;gap:4px 8px;background:#fff;border:1px solid #ddd;padding:8px}
.lane-label{font-size:12px;color:#555;align-self:center;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.track{position:relative;height:26px;background:#f4f4f4;border-radius:3px}
.track.thumbs{height:64px;background:#eee}
.thumb{position:absolute;top:2px;height:60px;border:1px solid #fff}
.band{position:absolute;top:0;bottom:0;color:#fff;font-size:12px;padding:4px 6px;overflow:hidden;white-space:nowrap;
text-overflow:ellipsis;border-right:2px solid #fff}
.tick{position:absolute;top:3px;bottom:3px;width:4px;margin-left:-2px;border-radius:2px}
.tick.plan{background:#4e79a7}.tick.memory{background:#59a14f}.tick.motion{background:#9c755f}
.tick.interjection{background:#e15759}.tick.speech{background:#b07aa1}.tick.vqa{background:#f28e2b}
.tick.trace{background:#76b7b2}.trace{fill:none;stroke:#ffea00;stroke-width:2.5;stroke-linejoin:round}
.trace-start{fill:#ffea00;stroke:#000;stroke-width:1}.trace-end{fill:#000;stroke:#ffea00;stroke-width:2}
.strips{display:flex;flex-direction:column;gap:6px}.strip{display:flex;gap:4px;align-items:center;background:#fff;
border:1px solid #ddd;padding:4px}.strip .label{width:220px;font-size:13px}.strip img{height:60px}
.vqa-grid{display:flex;flex-wrap:wrap;gap:12px}.vqa-item{background:#fff;border:1px solid #ddd;padding:6px;width:340px}
.vqa-frame{position:relative;display:inline-block;line-height:0}.vqa-frame svg{position:absolute;left:0;top:0;
width:100%;height:100%}.bbox{fill:none;stroke:#ff1744;stroke-width:2}.kp{fill:#00e5ff;stroke:#000;stroke-width:1}
.shape-label{fill:#ff1744;font-size:11px;font-weight:600}
pre{white-space:pre-wrap;margin:2px 0;font-size:12px;background:#f6f6f6;padding:4px}
ul.marks{margin:0;padding-left:18px}
"""

JS = """
document.addEventListener('keydown',function(e){var a=null;
if(e.key==='ArrowLeft'||e.key==='p')a=document.getElementById('prev');
if(e.key==='ArrowRight'||e.key==='n')a=document.getElementById('next');
if(a&&a.href)location.href=a.href;});
"""

INDEX_JS = """
function filterRows(q){q=q.toLowerCase();document.querySelectorAll('tr.episode-row').forEach(function(r){
r.style.display=r.textContent.toLowerCase().indexOf(q)>=0?'':'none';});}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, script: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width\"><style>{CSS}</style></head>"
            f"<body>\n{body}\n<script>{script}</script></body></html>\n")


def _pct(t: float, duration: float) -> float:
    return round(100.0 * min(max(t / duration, 0.0), 1.0), 3)


def _fmt_t(t: float) -> str:
    return f"{t:.3f}s"


def render_episode_page(view: EpisodeView, images: Mapping[str, Mapping[str, Any]], config: ReviewConfig, *,
                        prev_ep: int | None, next_ep: int | None, png: str | None, assets_rel: str) -> str:
    """One episode's page (links are relative, so the folder can be moved or zipped)."""
    e, dur = view.episode_index, view.duration
    timeline_frames = set(_spread(0, len(view.timestamps), config.thumbs_per_camera))
    parts = [f"<h1>Episode {e}</h1>",
             "<nav class=\"links\"><a href=\"../index.html\" id=\"index\">index</a>"
             + (f"<a id=\"prev\" href=\"{episode_dir_name(prev_ep)}.html\">&larr; episode {prev_ep}</a>"
                if prev_ep is not None else "")
             + (f"<a id=\"next\" href=\"{episode_dir_name(next_ep)}.html\">episode {next_ep} &rarr;</a>"
                if next_ep is not None else "")
             + "</nav>",
             f"<p><b>Task:</b> <span id=\"task\">{_e(view.task)}</span> <span class=\"muted\">"
             f"({len(view.timestamps)} frames, {dur:.2f}s at {view.fps:g} fps)</span></p>"]
    if view.task_aug:
        parts.append("<p><b>Rephrasings:</b></p><ul id=\"task-aug\">"
                     + "".join(f"<li class=\"task-aug\">{_e(t)}</li>" for t in view.task_aug) + "</ul>")
    if view.errors or view.warnings:
        items = "".join(f"<li class=\"err\">{_e(m)}</li>" for m in view.errors[:50])
        items += "".join(f"<li class=\"warn\">{_e(m)}</li>" for m in view.warnings[:50])
        parts.append(f"<h2>Validator</h2><ul id=\"issues\">{items}</ul>")
    else:
        parts.append("<p class=\"ok\" id=\"issues\">Validator: no issues</p>")

    # timeline
    lanes: list[str] = []
    for cam in view.cameras:
        thumbs = images.get(cam["key"], {}).get("thumbs", {})
        tiles = "".join(
            f"<img class=\"thumb\" loading=\"lazy\" style=\"left:{_pct(float(view.timestamps[i]), dur)}%;"
            f"transform:translateX(-{_pct(float(view.timestamps[i]), dur)}%)\" "
            f"src=\"{assets_rel}/{p}\" alt=\"t={_fmt_t(float(view.timestamps[i]))}\" "
            f"title=\"{_e(cam['key'])} t={_fmt_t(float(view.timestamps[i]))}\">"
            for i, p in sorted(thumbs.items()) if i in timeline_frames)
        lanes.append(f"<div class=\"lane-label\" title=\"{_e(cam['key'])}\">{_e(camera_slug(cam['key']))}</div>"
                     f"<div class=\"track thumbs\" data-camera=\"{_e(cam['key'])}\">{tiles}</div>")
    bands = "".join(
        f"<div class=\"band subtask-band\" style=\"left:{_pct(s.start, dur)}%;width:"
        f"{round(_pct(s.end, dur) - _pct(s.start, dur), 3)}%;background:{SUBTASK_COLORS[k % len(SUBTASK_COLORS)]}\" "
        f"title=\"{_e(s.label)} [{_fmt_t(s.start)}, {_fmt_t(s.end)})\">{_e(s.label)}</div>"
        for k, s in enumerate(view.spans))
    lanes.append(f"<div class=\"lane-label\">subtasks</div><div class=\"track\" id=\"subtask-lane\">{bands}</div>")
    for kind in ("plan", "memory", "motion", "interjection", "speech"):
        ticks = "".join(f"<a class=\"tick {kind}\" href=\"#{kind}-{k}\" style=\"left:{_pct(m.t, dur)}%\" "
                        f"title=\"{_e(kind)} {_fmt_t(m.t)}: {_e(m.text)}\"></a>"
                        for k, m in enumerate(x for x in view.marks if x.kind == kind))
        lanes.append(f"<div class=\"lane-label\">{kind}</div><div class=\"track\">{ticks}</div>")
    for cam in view.cameras:
        ticks = "".join(f"<a class=\"tick vqa\" href=\"#vqa-{k}\" style=\"left:{_pct(v.t, dur)}%\" "
                        f"title=\"VQA {_fmt_t(v.t)}: {_e(v.question)}\"></a>"
                        for k, v in enumerate(view.vqa) if v.camera == cam["key"])
        lanes.append(f"<div class=\"lane-label\">vqa {_e(camera_slug(cam['key']))}</div>"
                     f"<div class=\"track\">{ticks}</div>")
    for cam in view.cameras if view.traces else ():
        ticks = "".join(f"<a class=\"tick trace\" href=\"#trace-{k}\" style=\"left:{_pct(v.t, dur)}%\" "
                        f"title=\"trace {_fmt_t(v.t)}\"></a>"
                        for k, v in enumerate(view.traces) if v.camera == cam["key"])
        lanes.append(f"<div class=\"lane-label\">trace {_e(camera_slug(cam['key']))}</div>"
                     f"<div class=\"track\">{ticks}</div>")
    parts.append("<h2>Timeline</h2><div class=\"timeline\" id=\"timeline\">" + "".join(lanes) + "</div>")
    if png:
        parts.append(f"<p><a href=\"{png}\">timeline image (PNG)</a></p>")

    # subtask strips
    strips = []
    for k, s in enumerate(view.spans):
        imgs = []
        for cam in view.cameras:
            thumbs = images.get(cam["key"], {}).get("thumbs", {})
            imgs += [f"<img loading=\"lazy\" src=\"{assets_rel}/{thumbs[i]}\" title=\"{_e(cam['key'])} "
                     f"t={_fmt_t(float(view.timestamps[i]))}\" alt=\"\">"
                     for i in _spread(s.start_frame, s.end_frame, config.strip_frames) if i in thumbs]
        color = SUBTASK_COLORS[k % len(SUBTASK_COLORS)]
        strips.append(f"<div class=\"strip\" style=\"border-left:6px solid {color}\"><div class=\"label\">"
                      f"<span class=\"subtask-label\">{_e(s.label)}</span><br><span class=\"muted\">"
                      f"{_fmt_t(s.start)} &ndash; {_fmt_t(s.end)}</span></div>{''.join(imgs)}</div>")
    parts.append(f"<h2>Subtasks ({len(view.spans)})</h2><div class=\"strips\" id=\"strips\">{''.join(strips)}</div>")

    # plan / memory / motion / interjections / speech
    for kind, title in (("plan", "Plans"), ("memory", "Memory"), ("motion", "Motion"),
                        ("interjection", "Interjections"), ("speech", "Speech")):
        marks = [m for m in view.marks if m.kind == kind]
        if not marks:
            continue
        items = "".join(f"<li id=\"{kind}-{k}\" class=\"{kind}-row\"><b>{_fmt_t(m.t)}</b><pre>{_e(m.text)}</pre></li>"
                        for k, m in enumerate(marks))
        parts.append(f"<h2>{title} ({len(marks)})</h2><ul class=\"marks\">{items}</ul>")

    # VQA
    if view.vqa:
        cards = []
        for k, v in enumerate(view.vqa):
            figure, note, svg = _frame_figure(images.get(v.camera, {}), v.frame, assets_rel,
                                              lambda size, native, v=v: vqa_shapes(v.answer, size, native))
            cards.append(f"<div class=\"vqa-item\" id=\"vqa-{k}\" data-camera=\"{_e(v.camera)}\" data-t=\"{v.t!r}\">"
                         f"<div><b>{_fmt_t(v.t)}</b> <span class=\"muted\">{_e(camera_slug(v.camera))}, frame "
                         f"{v.frame}</span></div>{figure}<div><b>Q:</b> {_e(v.question)}</div>"
                         f"<pre class=\"answer\">{_e(v.answer)}</pre>"
                         + (f"<div class=\"muted coords\">{_e(note)}</div>" if note and svg else "") + "</div>")
        parts.append(f"<h2>VQA ({len(view.vqa)})</h2><div class=\"vqa-grid\" id=\"vqa\">{''.join(cards)}</div>")

    # traces
    if view.traces:
        cards = []
        for k, v in enumerate(view.traces):
            def path_of(size: tuple[int, int], native: tuple[int, int] | None,
                        v: TraceItem = v) -> tuple[list[Shape], str]:
                shape, note = trace_shape(v.content, size, native)
                return ([shape] if shape else []), note

            figure, note, svg = _frame_figure(images.get(v.camera, {}), v.frame, assets_rel, path_of)
            cards.append(f"<div class=\"vqa-item trace-item\" id=\"trace-{k}\" data-camera=\"{_e(v.camera)}\" "
                         f"data-t=\"{v.t!r}\"><div><b>{_fmt_t(v.t)}</b> <span class=\"muted\">"
                         f"{_e(camera_slug(v.camera))}, frame {v.frame}</span></div>{figure}"
                         f"<pre class=\"answer\">{_e(v.content)}</pre>"
                         + (f"<div class=\"muted coords\">{_e(note)}</div>" if note else "") + "</div>")
        parts.append(f"<h2>Traces ({len(view.traces)})</h2><div class=\"vqa-grid\" id=\"traces\">"
                     f"{''.join(cards)}</div>")
    return _page(f"Episode {e}", "\n".join(parts), JS)


def _frame_figure(info: Mapping[str, Any], frame: int, assets_rel: str,
                  shapes_of: Any) -> tuple[str, str, str]:
    """A large frame with an SVG overlay of `shapes_of((w, h), native)`; returns (html, note, svg)."""
    large = info.get("large", {}).get(frame)
    if large is None:
        return "<p class=\"muted\">(frame not decoded)</p>", "", ""
    native = info.get("native")
    path, w, h = large
    shapes, note = shapes_of((w, h), tuple(native) if native and all(native) else None)
    svg = "".join(_svg_shape(s) for s in shapes)
    html = (f"<div class=\"vqa-frame\"><img loading=\"lazy\" src=\"{assets_rel}/{path}\" width=\"{w}\" "
            f"height=\"{h}\" alt=\"\"><svg viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\" "
            f"data-width=\"{w}\" data-height=\"{h}\">{svg}</svg></div>")
    return html, note, svg


def _svg_shape(s: Shape) -> str:
    label = f"<text class=\"shape-label\" x=\"{s.x:.1f}\" y=\"{max(s.y - 3, 10):.1f}\">{_e(s.label)}</text>"
    if s.kind == "path":
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in s.points)
        (ex, ey) = s.points[-1]
        return (f"<polyline class=\"trace\" points=\"{pts}\" data-label=\"{_e(s.label)}\"></polyline>"
                f"<circle class=\"trace-start\" cx=\"{s.x:.1f}\" cy=\"{s.y:.1f}\" r=\"3.5\"></circle>"
                f"<circle class=\"trace-end\" cx=\"{ex:.1f}\" cy=\"{ey:.1f}\" r=\"3.5\"></circle>{label}")
    if s.kind == "box":
        return (f"<rect class=\"bbox\" x=\"{s.x:.1f}\" y=\"{s.y:.1f}\" width=\"{s.w:.1f}\" height=\"{s.h:.1f}\" "
                f"data-label=\"{_e(s.label)}\"></rect>{label}")
    return (f"<circle class=\"kp\" cx=\"{s.x:.1f}\" cy=\"{s.y:.1f}\" r=\"4\" data-label=\"{_e(s.label)}\"></circle>"
            f"{label}")


def render_index(summaries: Sequence[Mapping[str, Any]], *, root: Path, dataset_issues: Sequence[str],
                 validated: bool) -> str:
    total = {k: sum(s["counts"].get(k, 0) for s in summaries) for k in STYLE_COLUMNS}
    head = "".join(f"<th>{k}</th>" for k in STYLE_COLUMNS)
    rows = []
    for s in summaries:
        if not validated:
            status = "<span class=\"muted\">not validated</span>"
        elif s["errors"]:
            status = f"<span class=\"err\">{s['errors']} error(s)</span>"
        elif s["warnings"]:
            status = f"<span class=\"warn\">{s['warnings']} warning(s)</span>"
        elif not any(s["counts"].values()):
            status = "<span class=\"muted\">no annotations</span>"
        else:
            status = "<span class=\"ok\">ok</span>"
        counts = "".join(f"<td class=\"num\">{s['counts'].get(k, 0)}</td>" for k in STYLE_COLUMNS)
        rows.append(f"<tr class=\"episode-row\" data-episode=\"{s['episode_index']}\"><td><a href=\"episodes/"
                    f"{episode_dir_name(s['episode_index'])}.html\">{s['episode_index']}</a></td>"
                    f"<td>{_e(s['task'])}</td><td class=\"num\">{s['frames']}</td>"
                    f"<td class=\"num\">{s['duration']:.2f}</td>{counts}<td>{status}</td></tr>")
    issues = ""
    if dataset_issues:
        issues = "<h2>Dataset issues</h2><ul>" + "".join(f"<li>{_e(m)}</li>" for m in dataset_issues[:50]) + "</ul>"
    n_err = sum(1 for s in summaries if s["errors"])
    body = (f"<h1>Annotation review: {_e(root.name)}</h1><p class=\"muted\">{_e(root)}</p>"
            f"<p><span id=\"episode-count\" data-count=\"{len(summaries)}\">{len(summaries)} episodes</span>, "
            f"{total['subtask']} subtasks, {total['vqa']} VQA pairs"
            + (f", <span class=\"{'err' if n_err else 'ok'}\">{n_err} episode(s) with validator errors</span>"
               if validated else "")
            + "</p><p><input id=\"filter\" placeholder=\"filter episodes\" oninput=\"filterRows(this.value)\"></p>"
            f"{issues}<table id=\"episodes\"><thead><tr><th>episode</th><th>task</th><th>frames</th><th>s</th>{head}"
            f"<th>validator</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return _page(f"Review: {root.name}", body, INDEX_JS)


# -- building ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    row: dict[str, Any]
    ann: EpisodeAnnotations | None
    timestamps: np.ndarray
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    prev_ep: int | None
    next_ep: int | None


def _render_one(job: _Job, provider: Any, out: Path, config: ReviewConfig, png: bool) -> dict[str, Any]:
    view = episode_view(job.row, job.ann, job.timestamps, errors=job.errors, warnings=job.warnings)
    name = episode_dir_name(view.episode_index)
    assets = out / "assets" / name
    images = decode_episode_images(view, provider, job.row, assets, config)
    n = len(view.timestamps)
    png_rel = None
    if png:
        from .timeline import render_timeline_png

        first = next(iter(images.values()), {})
        pil = first.get("pil", {})
        thumbs = [(float(view.timestamps[i]), pil[i]) for i in _spread(0, n, config.thumbs_per_camera) if i in pil]
        render_timeline_png(view, thumbs, out / "timelines" / f"{name}.png")
        png_rel = f"../timelines/{name}.png"
    page = render_episode_page(view, images, config, prev_ep=job.prev_ep, next_ep=job.next_ep, png=png_rel,
                               assets_rel=f"../assets/{name}")
    (out / "episodes" / f"{name}.html").write_text(page, encoding="utf-8")
    return {"episode_index": view.episode_index, "task": view.task, "frames": n, "duration": view.duration,
            "counts": view.counts, "errors": len(view.errors), "warnings": len(view.warnings)}


def _render_chunk(jobs: Sequence[_Job], out: Path, config: ReviewConfig, png: bool,
                  progress: bool = False) -> list[dict[str, Any]]:
    """Render some episodes with one frame provider (its decoders stay open across neighbouring episodes)."""
    from ..frames import make_frame_provider

    provider = None
    if any(j.row.get("cameras") for j in jobs):
        provider = make_frame_provider([j.row for j in jobs], backend=config.backend, on_error="none",
                                       cache_bytes=0)  # every frame is asked for once
    try:
        from tqdm.auto import tqdm

        return [_render_one(j, provider, out, config, png)
                for j in tqdm(jobs, desc="review", unit="episode", disable=None if progress else True)]
    finally:
        if provider is not None and hasattr(provider, "close"):
            provider.close()


def _render_pool(jobs: Sequence[_Job], out: Path, config: ReviewConfig, png: bool,
                 n_workers: int) -> list[dict[str, Any]]:
    """Contiguous runs of episodes (so a worker's decoders keep their files open) over a process pool."""
    from concurrent.futures import as_completed

    from tqdm.auto import tqdm

    if config.backend in ("auto", "torchcodec"):  # import the decoder library once, before forking
        from ..frames.decoders.base import torchcodec_available

        torchcodec_available()
    bounds = np.linspace(0, len(jobs), n_workers * 2 + 1).round().astype(int)
    chunks = [jobs[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1) if bounds[i] < bounds[i + 1]]
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    results: dict[int, list[dict[str, Any]]] = {}
    with ProcessPoolExecutor(n_workers, mp_context=ctx) as pool, \
            tqdm(total=len(jobs), desc="review", unit="episode", disable=None) as bar:
        futures = {pool.submit(_render_chunk, chunk, out, config, png): k for k, chunk in enumerate(chunks)}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            bar.update(len(results[futures[fut]]))
    return [s for k in sorted(results) for s in results[k]]


def _workers(config: ReviewConfig, n: int) -> int:
    if config.workers:
        return max(1, min(config.workers, n))
    if n < _MIN_AUTO_PARALLEL:
        return 1
    return max(1, min(4, os.cpu_count() or 1, n))


def build_review(root: str | Path, out: str | Path, *, episodes: Iterable[int] | None = None, png: bool = False,
                 config: ReviewConfig | None = None) -> Path:
    """Write the static review site of the annotated dataset at `root` into `out`; returns `out/index.html`.

    `out` is (re)written: the `index.html`, `episodes/`, `assets/` and `timelines/` it holds are replaced.
    """
    from ..dataset.episodes import build_episode_rows
    from ..dataset.layout import DatasetLayout
    from ..language.validator import read_dataset_annotations, validate_dataset

    config = config or ReviewConfig()
    root = Path(root).resolve()
    out = Path(out)
    selected = sorted(set(episodes)) if episodes is not None else None
    layout = DatasetLayout.open(root)
    rows = build_episode_rows(layout, episodes=selected)
    if not rows:
        raise ValueError(f"{root}: no episodes to review (asked for {selected})")
    anns, times = read_dataset_annotations(root, episodes=selected)
    by_episode: Mapping[int | None, Mapping[str, list[Any]]] = {}
    if config.validate:
        by_episode = validate_dataset(root, episodes=selected).by_episode()
    dataset_issues = [f"{i.level}: {i}" for lst in (by_episode.get(None) or {}).values() for i in lst]

    for sub in ("episodes", "assets", "timelines"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "episodes").mkdir(parents=True, exist_ok=True)
    if png:
        (out / "timelines").mkdir(parents=True, exist_ok=True)
    order = [int(r["episode_index"]) for r in rows]
    jobs = []
    for k, r in enumerate(rows):
        e = int(r["episode_index"])
        issues = by_episode.get(e) or {}
        jobs.append(_Job(dict(r), anns.get(e), times.get(e, np.asarray(r["timestamps"], dtype=np.float32)),
                         tuple(str(i) for i in issues.get("errors", [])),
                         tuple(str(i) for i in issues.get("warnings", [])),
                         order[k - 1] if k > 0 else None, order[k + 1] if k + 1 < len(order) else None))
    n_workers = _workers(config, len(jobs))
    if n_workers == 1:
        summaries = _render_chunk(jobs, out, config, png, progress=True)
    else:
        summaries = _render_pool(jobs, out, config, png, n_workers)
    index = out / "index.html"
    index.write_text(render_index(summaries, root=root, dataset_issues=dataset_issues, validated=config.validate),
                     encoding="utf-8")
    logger.info("review of %d episodes written to %s", len(summaries), index)
    return index
