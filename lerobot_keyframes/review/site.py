"""The review site, as one import: the pieces live in `model` (rows -> spans, marks, VQA), `images` (frames),
`render` (jinja2 templates) and `build` (the whole site)."""

from __future__ import annotations

from .build import build_review, link_videos
from .images import camera_slug, decode_episode_images, episode_dir_name, spread
from .model import (
    STYLE_COLUMNS,
    SUBTASK_COLORS,
    EpisodeView,
    Mark,
    Shape,
    Span,
    TraceItem,
    VqaItem,
    episode_view,
    row_ids,
    row_record,
    trace_shape,
    vqa_shapes,
)
from .render import render_episode_page, render_index

__all__ = ["STYLE_COLUMNS", "SUBTASK_COLORS", "EpisodeView", "Mark", "Shape", "Span", "TraceItem", "VqaItem",
           "build_review", "camera_slug", "decode_episode_images", "episode_dir_name", "episode_view",
           "link_videos", "render_episode_page", "render_index", "row_ids", "row_record", "spread", "trace_shape",
           "vqa_shapes"]
