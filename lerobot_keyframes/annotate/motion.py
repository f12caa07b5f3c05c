"""`motion` module: camera-agnostic motion rows from the robot's own signals, no model needed.

Gripper closing and opening, and the arm coming to rest, are read from `observation.state` (or the
configured signal) of the episode's rows in the data parquet. Each event becomes a persistent
`motion` row at the exact frame where it happens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .context import AnnotationError, EpisodeContext
from .rows import persistent_row

MODULE = "motion"


def read_signal(episode: dict[str, Any], column: str) -> np.ndarray:
    """The episode's rows of a numeric vector column, as a (frames, dims) float array."""
    path = Path(episode["root"]) / episode["data_file"]
    table = pq.read_table(path, columns=["episode_index", column])
    table = table.filter(pc.equal(table["episode_index"], episode["episode_index"]))
    values = table[column].to_pylist()
    return np.asarray(values, dtype=np.float64).reshape(len(values), -1)


def motion_events(signal: np.ndarray, fps: float, gripper_index: int, rest_speed: float = 0.02,
                  rest_seconds: float = 0.25, min_spacing_s: float = 0.3) -> list[tuple[int, str]]:
    """(frame index, description) for gripper changes and for the arm coming to rest.

    Rows closer than `min_spacing_s` are dropped (the earlier one wins): lerobot matches persistent rows
    within 0.1 s of a frame, so two of one style closer than ~0.2 s would be ambiguous at training time.
    """
    events: list[tuple[int, str]] = []
    if len(signal) < 2:
        return events
    grip = signal[:, gripper_index] > 0.5
    for i in np.nonzero(grip[1:] != grip[:-1])[0] + 1:
        events.append((int(i), "close the gripper" if grip[i] else "open the gripper"))
    arm = np.delete(signal, gripper_index % signal.shape[1], axis=1)
    if arm.shape[1]:
        speed = np.linalg.norm(np.diff(arm, axis=0), axis=1) * fps
        still = np.concatenate([[False], speed < rest_speed])
        need = max(2, int(round(rest_seconds * fps)))
        run = 0
        for i, s in enumerate(still):
            run = run + 1 if s else 0
            if run == need:
                events.append((i - need + 1, "hold the arm still"))
    spacing = max(1, int(np.ceil(min_spacing_s * fps)))
    kept: list[tuple[int, str]] = []
    for i, text in sorted(events):
        if not kept or i - kept[-1][0] >= spacing:
            kept.append((i, text))
    return kept


def run_motion(ctx: EpisodeContext) -> list[dict[str, Any]]:
    cfg = ctx.config.motion
    try:
        signal = read_signal(ctx.episode, cfg.signal)
    except (KeyError, OSError, ValueError) as exc:
        raise AnnotationError(f"cannot read signal {cfg.signal!r}: {exc}", episode_index=ctx.index, module=MODULE) from exc
    return [persistent_row("motion", text, ctx.frame_time(i)) for i, text in motion_events(signal, ctx.fps, cfg.gripper_index)]
