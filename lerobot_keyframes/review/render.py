"""HTML of the review site, from jinja2 templates (`templates/*.jinja`). The CSS and scripts are written once
into `OUT/static/` and referenced relatively, so every page works from `file://` with no network."""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ReviewConfig
from .images import camera_slug, episode_dir_name, spread
from .model import STYLE_COLUMNS, SUBTASK_COLORS, EpisodeView, Shape, TraceItem, trace_shape, vqa_shapes

if TYPE_CHECKING:
    import jinja2

# (width, height) of the drawn frame, the camera's native size -> (shapes to draw, a note on what was dropped)
ShapesOf = Callable[[tuple[int, int], tuple[int, int] | None], tuple[list[Shape], str]]

# templates/NAME.jinja -> OUT/static/NAME, copied as they are (named .jinja so the package data ships them)
STATIC_FILES = ("review.css", "decisions.js", "index.js", "episode.js")
MARK_SECTIONS = (("plan", "Plans"), ("memory", "Memory"), ("motion", "Motion"), ("interjection", "Interjections"),
                 ("speech", "Speech"))


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("lerobot_keyframes.review", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=False,
                              keep_trailing_newline=True)


def write_static(out: Path) -> None:
    """Copy the site's CSS and scripts into `out/static/` (shared by every page)."""
    from importlib.resources import files

    static = out / "static"
    static.mkdir(parents=True, exist_ok=True)
    for name in STATIC_FILES:
        (static / name).write_bytes(files("lerobot_keyframes.review").joinpath("templates", f"{name}.jinja").read_bytes())


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _pct(t: float, duration: float) -> float:
    return round(100.0 * min(max(t / duration, 0.0), 1.0), 3)


def _fmt_t(t: float) -> str:
    return f"{t:.3f}s"


def episode_data(view: EpisodeView, videos: Sequence[Mapping[str, Any]], attention: Sequence[int],
                 annotations: str = "") -> dict[str, Any]:
    """What the page's script needs: exact parquet timestamps, each camera's video and offset, the rows, and the
    digest of the rows (`identity.annotations_digest`) that the page stamps into its decisions."""
    return {"episode": view.episode_index, "annotations": annotations, "fps": view.fps, "duration": view.duration,
            "timestamps": [float(t) for t in view.timestamps],
            "cameras": [{"key": c["key"], "slug": c["slug"], "from": c["from"], "width": c.get("width"),
                         "height": c.get("height")} for c in videos],
            "rows": view.rows, "attention": list(attention), "page_of_template": "episode_{}.html"}


def render_episode_page(view: EpisodeView, images: Mapping[str, Mapping[str, Any]], config: ReviewConfig, *,
                        prev_ep: int | None, next_ep: int | None, png: str | None, assets_rel: str,
                        videos: Sequence[Mapping[str, Any]] = (), attention: Sequence[int] = (),
                        site: Mapping[str, Any] | None = None, annotations: str = "") -> str:
    """One episode's page (links are relative, so the folder can be moved or zipped).

    `videos`: per camera {"key", "slug", "src" (relative to the page), "from" (from_timestamp), "width", "height"}.
    """
    mark_sections = [{"kind": kind, "title": title, "marks": [m for m in view.marks if m.kind == kind]}
                     for kind, title in MARK_SECTIONS]
    return environment().get_template("episode.jinja").render(
        title=f"Episode {view.episode_index}", e=view.episode_index, view=view, n=len(view.timestamps),
        dur=view.duration, prev_ep=prev_ep, next_ep=next_ep,
        prev_page=f"{episode_dir_name(prev_ep)}.html" if prev_ep is not None else "",
        next_page=f"{episode_dir_name(next_ep)}.html" if next_ep is not None else "",
        videos=[{**c, "src": c["src"]} for c in videos], thumb_lanes=_thumb_lanes(view, images, config, assets_rel),
        bands=_bands(view), tick_lanes=_tick_lanes(view), png=png, strips=_strips(view, images, config, assets_rel),
        mark_sections=[s for s in mark_sections if s["marks"]], vqa_cards=_vqa_cards(view, images, assets_rel),
        trace_cards=_trace_cards(view, images, assets_rel), quality=[_quality_item(f) for f in view.quality],
        data=episode_data(view, videos, attention, annotations), site=dict(site or {"dataset": ""}),
        static="../static", script="episode.js")


def _thumb_lanes(view: EpisodeView, images: Mapping[str, Mapping[str, Any]], config: ReviewConfig,
                 assets_rel: str) -> list[dict[str, Any]]:
    """Per camera, the keyframe thumbnails placed along the timeline."""
    dur, ts = view.duration, view.timestamps
    timeline_frames = set(spread(0, len(ts), config.thumbs_per_camera))
    lanes = []
    for cam in view.cameras:
        thumbs = images.get(cam["key"], {}).get("thumbs", {})
        lanes.append({"key": cam["key"], "slug": camera_slug(cam["key"]), "tiles": [
            {"pct": _pct(float(ts[i]), dur), "src": f"{assets_rel}/{p}", "time": _fmt_t(float(ts[i]))}
            for i, p in sorted(thumbs.items()) if i in timeline_frames]})
    return lanes


def _bands(view: EpisodeView) -> list[dict[str, Any]]:
    """One coloured band per subtask span."""
    dur = view.duration
    return [{"id": s.row_id, "frame": s.start_frame, "left": _pct(s.start, dur),
             "width": round(_pct(s.end, dur) - _pct(s.start, dur), 3), "color": SUBTASK_COLORS[k % len(SUBTASK_COLORS)],
             "label": s.label, "start": _fmt_t(s.start), "end": _fmt_t(s.end)} for k, s in enumerate(view.spans)]


def _tick_lanes(view: EpisodeView) -> list[dict[str, Any]]:
    """Tick lanes: one per mark kind, then VQA per camera, then traces per camera (when there are any)."""
    dur = view.duration
    lanes = []
    for kind, _ in MARK_SECTIONS:
        lanes.append({"label": kind, "ticks": [
            {"kind": kind, "anchor": f"{kind}-{k}", "frame": m.frame, "pct": _pct(m.t, dur),
             "title": f"{kind} {_fmt_t(m.t)}: {m.text}"} for k, m in enumerate(x for x in view.marks if x.kind == kind)]})
    for cam in view.cameras:
        lanes.append({"label": f"vqa {camera_slug(cam['key'])}", "ticks": [
            {"kind": "vqa", "anchor": f"vqa-{k}", "frame": v.frame, "pct": _pct(v.t, dur),
             "title": f"VQA {_fmt_t(v.t)}: {v.question or ''}"} for k, v in enumerate(view.vqa) if v.camera == cam["key"]]})
    for cam in view.cameras if view.traces else ():
        lanes.append({"label": f"trace {camera_slug(cam['key'])}", "ticks": [
            {"kind": "trace", "anchor": f"trace-{k}", "frame": v.frame, "pct": _pct(v.t, dur),
             "title": f"trace {_fmt_t(v.t)}"} for k, v in enumerate(view.traces) if v.camera == cam["key"]]})
    return lanes


def _strips(view: EpisodeView, images: Mapping[str, Mapping[str, Any]], config: ReviewConfig,
            assets_rel: str) -> list[dict[str, Any]]:
    """Per subtask span, a few frames of every camera."""
    ts = view.timestamps
    strips = []
    for k, s in enumerate(view.spans):
        imgs = []
        for cam in view.cameras:
            thumbs = images.get(cam["key"], {}).get("thumbs", {})
            imgs += [{"src": f"{assets_rel}/{thumbs[i]}", "title": f"{cam['key']} t={_fmt_t(float(ts[i]))}"}
                     for i in spread(s.start_frame, s.end_frame, config.strip_frames) if i in thumbs]
        strips.append({"id": s.row_id, "color": SUBTASK_COLORS[k % len(SUBTASK_COLORS)], "label": s.label,
                       "start": _fmt_t(s.start), "end": _fmt_t(s.end), "start_frame": s.start_frame,
                       "end_frame": s.end_frame, "images": imgs})
    return strips


def _vqa_cards(view: EpisodeView, images: Mapping[str, Mapping[str, Any]], assets_rel: str) -> list[dict[str, Any]]:
    """One card per VQA pair: its frame with the answer's boxes/points drawn on it."""
    cards = []
    for v in view.vqa:
        figure, note, svg = _frame_figure(images.get(v.camera, {}), v.frame, assets_rel,
                                          lambda size, native, v=v: vqa_shapes(v.answer, size, native))
        cards.append({"camera": v.camera, "t_repr": repr(v.t), "frame": v.frame, "time": _fmt_t(v.t),
                      "slug": camera_slug(v.camera), "figure": figure, "question": v.question or "",
                      "answer": v.answer or "", "answer_id": v.answer_id, "note": note if svg else "",
                      "ids": " ".join(i for i in (v.question_id, v.answer_id) if i)})
    return cards


def _trace_cards(view: EpisodeView, images: Mapping[str, Mapping[str, Any]], assets_rel: str) -> list[dict[str, Any]]:
    """One card per trace row: its frame with the trace's path drawn on it."""
    cards = []
    for v in view.traces:
        def path_of(size: tuple[int, int], native: tuple[int, int] | None,
                    v: TraceItem = v) -> tuple[list[Shape], str]:
            shape, note = trace_shape(v.content, size, native)
            return ([shape] if shape else []), note

        figure, note, _ = _frame_figure(images.get(v.camera, {}), v.frame, assets_rel, path_of)
        cards.append({"camera": v.camera, "t_repr": repr(v.t), "frame": v.frame, "time": _fmt_t(v.t),
                      "slug": camera_slug(v.camera), "figure": figure, "answer": v.content or "", "note": note,
                      "ids": v.row_id})
    return cards


def _quality_item(f: Mapping[str, Any]) -> dict[str, str]:
    """One quality finding as the episode page lists it (a time in seconds, else blank)."""
    t = f.get("time")
    return {"kind": str(f.get("kind") or "?"), "camera": str(f.get("camera") or ""),
            "time": _fmt_t(float(t)) if isinstance(t, (int, float)) else "", "message": str(f.get("message") or "")}


def _frame_figure(info: Mapping[str, Any], frame: int, assets_rel: str,
                  shapes_of: ShapesOf) -> tuple[str, str, str]:
    """A large frame with an SVG overlay of `shapes_of((w, h), native)`; returns (html, note, svg)."""
    large = info.get("large", {}).get(frame)
    if large is None:
        return "<p class=\"muted\">(frame not decoded)</p>", "", ""
    native = info.get("native")
    path, w, h = large
    shapes, note = shapes_of((w, h), tuple(native) if native and all(native) else None)
    svg = "".join(_svg_shape(s) for s in shapes)
    html = (f"<div class=\"vqa-frame\" title=\"show this frame in the player\"><img loading=\"lazy\" "
            f"src=\"{assets_rel}/{path}\" width=\"{w}\" height=\"{h}\" alt=\"\"><svg viewBox=\"0 0 {w} {h}\" "
            f"preserveAspectRatio=\"none\" data-width=\"{w}\" data-height=\"{h}\">{svg}</svg></div>")
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


def episode_status(summary: Mapping[str, Any], validated: bool) -> str:
    """ok | warn | err | none (no annotations) | unvalidated: what the index filters and sorts by."""
    if not any(summary["counts"].values()):
        return "none"
    if not validated:
        return "unvalidated"
    return "err" if summary["errors"] else "warn" if summary["warnings"] else "ok"


def render_index(summaries: Sequence[Mapping[str, Any]], *, root: Path, dataset_issues: Sequence[str],
                 validated: bool, model: str | None = None, site: Mapping[str, Any] | None = None) -> str:
    total = {k: sum(s["counts"].get(k, 0) for s in summaries) for k in STYLE_COLUMNS}
    rows = []
    for s in summaries:
        status = episode_status(s, validated)
        rows.append({**s, "status": status, "attention": status in ("err", "warn") or bool(s.get("quality")),
                     "page": f"{episode_dir_name(s['episode_index'])}.html",
                     "styles": [k for k in STYLE_COLUMNS if s["counts"].get(k, 0)]})
    return environment().get_template("index.jinja").render(
        title=f"Review: {root.name}", root_name=root.name, root=str(root), summaries=rows, total=total,
        validated=validated, n_err=sum(1 for s in summaries if s["errors"]), styles=STYLE_COLUMNS,
        columns=[k for k in STYLE_COLUMNS if total[k]],  # a column per style the dataset has
        model=model, models=[model] if model else [], dataset_issues=list(dataset_issues[:50]),
        site=dict(site or {"dataset": str(root)}), static="static", script="index.js")
