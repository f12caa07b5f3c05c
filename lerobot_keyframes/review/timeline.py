"""`--png`: one image per episode with thumbnails, subtask bands and event ticks (for dataset cards, issues)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from PIL import Image

    from .model import EpisodeView

_LANES = ("plan", "memory", "motion", "interjection", "speech", "vqa", "trace")
_TICK_COLORS = {"plan": "#4e79a7", "memory": "#59a14f", "motion": "#9c755f", "interjection": "#e15759",
                "speech": "#b07aa1", "vqa": "#f28e2b", "trace": "#76b7b2"}
_THUMB_H = 1.6  # height of a thumbnail row, in lane units


def render_timeline_png(view: EpisodeView, cameras: Sequence[tuple[str, Sequence[tuple[float, Image.Image]]]],
                        path: str | Path, *, width_in: float = 12.0, dpi: int = 80) -> Path:
    """Draw the episode timeline with matplotlib's Agg backend: one thumbnail row per camera on top.

    `cameras`: (name, [(time, PIL image), ...]) per camera. Thumbnails fill equal slots of the episode's
    duration, so the last one ends at the end of the episode (inside the image).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_lanes = 1 + len(_LANES)
    rows = [c for c in cameras if c[1]]
    fig, ax = plt.subplots(figsize=(width_in, 1.2 + 0.28 * n_lanes + _THUMB_H * max(len(rows), 1)), dpi=dpi)
    try:
        labels = _draw_thumbnails(ax, view, rows, n_lanes)
        labels += _draw_spans(ax, view, n_lanes, width_in * dpi)
        labels += _draw_ticks(ax, view, n_lanes)
        _finish_axes(ax, view, labels, top=n_lanes + 0.2 + _THUMB_H * len(rows))
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path


def _draw_thumbnails(ax: Axes, view: EpisodeView, rows: Sequence[tuple[str, Sequence[tuple[float, Image.Image]]]],
                     n_lanes: int) -> list[tuple[float, str]]:
    """One row of thumbnails per camera above the lanes; returns the (y, label) of each row."""
    import numpy as np

    labels = []
    for r, (name, thumbs) in enumerate(rows):
        lo = n_lanes + 0.2 + _THUMB_H * (len(rows) - 1 - r)
        w = view.duration / len(thumbs)
        for k, (_t, image) in enumerate(thumbs):
            ax.imshow(np.asarray(image), extent=(k * w, (k + 1) * w, lo + 0.05, lo + _THUMB_H - 0.05),
                      aspect="auto")
        labels.append((lo + _THUMB_H / 2, name))
    return labels


def _draw_spans(ax: Axes, view: EpisodeView, n_lanes: int, width_px: float) -> list[tuple[float, str]]:
    """The subtask bands, each labelled as far as its width allows."""
    from .model import SUBTASK_COLORS

    dur = view.duration
    y = n_lanes - 0.5
    for k, s in enumerate(view.spans):
        color = SUBTASK_COLORS[k % len(SUBTASK_COLORS)]
        ax.barh(y, s.end - s.start, left=s.start, height=0.8, color=color, edgecolor="white")
        room = int((s.end - s.start) / dur * width_px * 0.8 / 4.5)  # ~4.5 px per 7 pt character
        label = s.label if len(s.label) <= room else (s.label[: max(room - 1, 0)] + "…" if room > 2 else "")
        ax.text(s.start + 0.01 * dur, y, label, va="center", ha="left", fontsize=7, color="white")
    return [(y, "subtasks")]


def _draw_ticks(ax: Axes, view: EpisodeView, n_lanes: int) -> list[tuple[float, str]]:
    """One lane of event ticks per kind (marks, VQA, traces)."""
    labels = []
    for lane, kind in enumerate(_LANES):
        y = n_lanes - 1.5 - lane
        items = {"vqa": view.vqa, "trace": view.traces}.get(kind) or [m for m in view.marks if m.kind == kind]
        times = [v.t for v in items]
        if times:
            ax.vlines(times, y - 0.35, y + 0.35, colors=_TICK_COLORS[kind], linewidth=2)
        labels.append((y, kind))
    return labels


def _finish_axes(ax: Axes, view: EpisodeView, labels: Sequence[tuple[float, str]], top: float) -> None:
    """Lane labels, limits (ticks at t=0 stay visible; thumbnails end at the duration) and the title."""
    dur = view.duration
    ax.set_yticks([y for y, _ in labels], [name for _, name in labels], fontsize=8)
    ax.set_xlim(-0.006 * dur, dur * 1.006)
    ax.set_ylim(0, top)
    ax.set_xlabel("episode time (s)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    title = f"episode {view.episode_index}: {view.task}"
    ax.set_title(title if len(title) < 120 else title[:117] + "...", fontsize=9, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
