"""`--png`: one image per episode with thumbnails, subtask bands and event ticks (for dataset cards, issues)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .site import EpisodeView

_LANES = ("plan", "memory", "motion", "interjection", "speech", "vqa", "trace")
_TICK_COLORS = {"plan": "#4e79a7", "memory": "#59a14f", "motion": "#9c755f", "interjection": "#e15759",
                "speech": "#b07aa1", "vqa": "#f28e2b", "trace": "#76b7b2"}


def render_timeline_png(view: EpisodeView, thumbs: Sequence[tuple[float, Any]], path: str | Path, *,
                        width_in: float = 12.0, dpi: int = 80) -> Path:
    """Draw the episode timeline (first camera's thumbnails on top) with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    from .site import SUBTASK_COLORS

    dur = view.duration
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_lanes = 1 + len(_LANES)
    thumb_h = 1.6
    fig, ax = plt.subplots(figsize=(width_in, 1.2 + 0.28 * n_lanes + thumb_h), dpi=dpi)
    try:
        top = n_lanes + thumb_h + 0.2
        if thumbs:
            w = dur / max(len(thumbs), 1)
            for t, image in thumbs:
                ax.imshow(np.asarray(image), extent=(t, min(t + w, dur + w), n_lanes + 0.2, top), aspect="auto")
        y = n_lanes - 0.5
        for k, s in enumerate(view.spans):
            color = SUBTASK_COLORS[k % len(SUBTASK_COLORS)]
            ax.barh(y, s.end - s.start, left=s.start, height=0.8, color=color, edgecolor="white")
            room = int((s.end - s.start) / dur * width_in * dpi * 0.8 / 4.5)  # ~4.5 px per 7 pt character
            label = s.label if len(s.label) <= room else (s.label[: max(room - 1, 0)] + "…" if room > 2 else "")
            ax.text(s.start + 0.01 * dur, y, label, va="center", ha="left", fontsize=7, color="white")
        labels = ["subtasks"]
        for lane, kind in enumerate(_LANES):
            y = n_lanes - 1.5 - lane
            items = {"vqa": view.vqa, "trace": view.traces}.get(kind) or [m for m in view.marks if m.kind == kind]
            times = [v.t for v in items]
            if times:
                ax.vlines(times, y - 0.35, y + 0.35, colors=_TICK_COLORS[kind], linewidth=2)
            labels.append(kind)
        ax.set_yticks([n_lanes - 0.5 - i for i in range(n_lanes)], labels, fontsize=8)
        ax.set_xlim(-0.01 * dur, dur * 1.01)
        ax.set_ylim(0, top)
        ax.set_xlabel("episode time (s)", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        title = f"episode {view.episode_index}: {view.task}"
        ax.set_title(title if len(title) < 120 else title[:117] + "...", fontsize=9, loc="left")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
