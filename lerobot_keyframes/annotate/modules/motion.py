"""`motion` module: camera-agnostic motion rows from the robot's own signals, no model needed.

Gripper closing and opening, and the arm coming to rest, are read from `observation.state` (or the
configured signal) of the episode's rows in the data parquet. Each event becomes a persistent
`motion` row at the exact frame where it happens. Rest detection scales every dimension by its own
range, ignores noise-only and slowly drifting dimensions (and orientation columns when the feature
names say which are positions), so it fires on real lerobot recordings (see `frames.policies.arm_motion`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...dataset.signals import feature_names
from ...frames.policies import Motion, arm_dimensions, rest_windows
from ...frames.policies.events import resolve_signal
from ...language.rows import LanguageRow
from ..config import MotionConfig
from ..context import AnnotationError, EpisodeContext
from .base import KeyInputs, Module

logger = logging.getLogger(__name__)


def motion_events(signal: np.ndarray, fps: float, gripper_index: int | None, rest_speed: float = 0.1,
                  rest_seconds: float = 0.25, min_spacing_s: float = 0.3,
                  names: list[str] | None = None) -> list[tuple[int, str]]:
    """(frame index, description) for gripper changes and for the arm coming to rest.

    The gripper is normalised per episode and switches with hysteresis (`Motion.gripper_events`: any units,
    closed = high). The arm is at rest where its range-scaled, drift-corrected speed stays below
    `rest_speed` x its 95th percentile for `rest_seconds` (`frames.policies.rest_windows`). Rows closer than
    `min_spacing_s` are dropped (the earlier one wins): lerobot matches persistent rows within 0.1 s of a
    frame, so two of one style closer than ~0.2 s would be ambiguous at training time.
    """
    events: list[tuple[int, str]] = []
    if len(signal) < 2:
        return events
    d = signal.shape[1]
    if gripper_index is not None:
        for kind, i in Motion().gripper_events(signal[:, gripper_index]):
            events.append((int(i), "close the gripper" if kind == "grasp" else "open the gripper"))
    arm_idx = arm_dimensions(names, d, gripper_index)
    if arm_idx:
        ts = np.arange(len(signal), dtype=np.float64) / fps
        for start, _end in rest_windows(signal[:, arm_idx], ts, rest_speed=rest_speed, rest_seconds=rest_seconds):
            events.append((start, "hold the arm still"))
    spacing = max(1, int(np.ceil(min_spacing_s * fps)))
    kept: list[tuple[int, str]] = []
    for i, text in sorted(events):
        if not kept or i - kept[-1][0] >= spacing:
            kept.append((i, text))
    return kept


def motion_rows(ctx: EpisodeContext) -> list[LanguageRow]:
    cfg = ctx.config.motion
    signal, values, note = resolve_signal(ctx.episode, cfg.signal, cfg.gripper_index)
    if signal is None and cfg.gripper_index is None:  # no entry named gripper: the last one, as before
        signal, values, _ = resolve_signal(ctx.episode, cfg.signal, -1)
        if signal is not None:
            logger.info("episode %d: %s; using the last entry", ctx.index, note)
    if signal is None or values is None:
        raise AnnotationError(f"cannot read signal {cfg.signal!r}: {note}", episode_index=ctx.index,
                              module=MotionModule.name)
    names = feature_names(ctx.episode.get("root"), signal.column)
    return [LanguageRow("assistant", text, "motion", ctx.frame_time(i))
            for i, text in motion_events(values, ctx.fps, signal.gripper_index, names=names)]


class MotionModule(Module):
    """Gripper open/close and arm-at-rest rows from the robot's own signals; asks no model, decodes no frame."""

    name = "motion"
    styles = frozenset({"motion"})
    config_class = MotionConfig
    asks_model = False

    def key_parts(self, config: MotionConfig, inputs: KeyInputs) -> tuple[Any, ...]:
        return (self.name, config, inputs.source)  # no model, no prompt, no random choice

    async def run(self, ctx: EpisodeContext, upstream: Mapping[str, Any]) -> list[LanguageRow]:
        return await asyncio.to_thread(motion_rows, ctx)
