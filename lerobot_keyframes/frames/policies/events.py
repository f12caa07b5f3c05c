"""An episode's robot events, to the frame: which signal they come from, and where the arm rests, the gripper
closes or opens, and the arm slows down.

The quality checks (a gripper that never moves) and the grounding of subtask boundaries
(`annotate.modules.grounding`) read the robot the same way, here; the analysis itself is in `detection`.

Events, by strength:

- tier 1: the arm comes to rest / starts moving again (`rest_start`, `rest_end`), and gripper changes
  (`gripper_close`: closing complete, `gripper_open`: opening starts) that happen while the arm moves;
- tier 2: speed minima (the arm slows at a via point without stopping), used only where no tier-1 event
  is within the tolerance;
- tier 0 (never a boundary target, still listed in the prompt): a gripper change while the arm holds
  still - the grasp or release *is* the rest, and the rest's edges are where the action changes.

Which column is the signal and which entry the gripper is read from `meta/info.json` feature names
(a name containing gripper/claw/finger/jaw) or set by `--motion.signal` / `--motion.gripper_index`;
without either there are no events and the note says why. Which way the gripper closes is not recorded
anywhere: an episode is taken to start with it open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from ...dataset.signals import feature_names, read_episode_signals
from .detection import (
    arm_dimensions,
    arm_motion,
    gripper_events,
    gripper_from_names,
    rest_windows,
    speed_minima,
)

SignalEventKind = Literal["rest_start", "rest_end", "gripper_close", "gripper_open", "speed_min"]
SIGNAL_CANDIDATES = ("observation.state", "action")

_PHRASES = {
    "rest_start": "the arm stops",
    "rest_end": "the arm starts moving",
    "gripper_close": "the gripper closes",
    "gripper_open": "the gripper starts opening",
    "speed_min": "the arm slows down",
}


@dataclass(frozen=True)
class SignalEvent:
    """One robot event at an exact frame. `tier` 1/2: a boundary may snap to it (1 first); 0: never."""

    kind: SignalEventKind
    index: int
    time: float  # the episode's float32 frame timestamp, as a Python float
    tier: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def text(self) -> str:
        return f"{_PHRASES[self.kind]} at {self.time:.2f} s"


@dataclass(frozen=True)
class RobotSignal:
    """Where the events come from: a numeric column of the data parquet and its gripper entry."""

    column: str
    gripper_index: int | None  # None: no gripper known (rest events only)
    gripper_from: Literal["names", "config", "none"]
    arm_indices: tuple[int, ...]


@dataclass(frozen=True)
class Grounding:
    """An episode's signal, its events and a note for the summary when there is no usable signal."""

    signal: RobotSignal | None
    events: tuple[SignalEvent, ...] = ()
    note: str | None = None

    @property
    def usable(self) -> bool:
        return self.signal is not None and bool(self.events)

    def as_dict(self) -> dict[str, Any]:
        return {"signal": asdict(self.signal) if self.signal else None,
                "events": [e.as_dict() for e in self.events], "note": self.note}


def resolve_signal(episode: Mapping[str, Any], column: str = "observation.state",
                   gripper_index: int | None = None) -> tuple[RobotSignal | None, np.ndarray | None, str | None]:
    """(signal, its (frames, dims) values, note). The configured column, else the first of
    `SIGNAL_CANDIDATES` that the data parquet has; the gripper from the feature names or `gripper_index`."""
    n = len(episode.get("timestamps") or [])
    columns = [column, *[c for c in SIGNAL_CANDIDATES if c != column]]
    try:
        read = read_episode_signals(episode, columns) if episode.get("root") and episode.get("data_file") else {}
    except (OSError, ValueError, KeyError) as exc:
        return None, None, f"cannot read the robot signal ({exc}); boundaries keep the model's frames"
    for key in columns:
        values = read.get(key)
        if values is None or len(values) != n or values.shape[1] == 0:
            continue
        d = values.shape[1]
        names = feature_names(episode.get("root"), key)
        if gripper_index is not None:
            if not -d <= gripper_index < d:
                return None, None, f"--motion.gripper_index={gripper_index} is outside {key!r} ({d} entries)"
            g, source = gripper_index % d, "config"
        else:
            g = gripper_from_names(names)
            source = "names" if g is not None else "none"
        if g is None and d > 1:
            return None, None, (f"no entry of {key!r} is named as the gripper in meta/info.json "
                                f"(names: {names}); set --motion.gripper_index to ground boundaries in it")
        arm = tuple(arm_dimensions(names, d, g))
        return RobotSignal(key, g, source, arm), values, None  # type: ignore[arg-type]
    return None, None, f"no numeric signal column ({', '.join(columns)}) in the data; boundaries keep the model's frames"


def episode_events(episode: Mapping[str, Any], signal: RobotSignal, values: np.ndarray) -> list[SignalEvent]:
    """Rests, gripper changes and speed minima of one episode, sorted by frame (see the module doc)."""
    ts = np.asarray(episode["timestamps"], dtype=np.float32)
    t64 = ts.astype(np.float64)
    out: list[tuple[SignalEventKind, int, int]] = []
    windows: list[tuple[int, int]] = []
    if signal.arm_indices:
        arm = values[:, list(signal.arm_indices)]
        motion = arm_motion(arm, t64)
        if motion is not None:
            windows = rest_windows(arm, t64, motion=motion)
            for a, b in windows:
                out += [("rest_start", a, 1), ("rest_end", b, 1)]
            for i in speed_minima(arm, t64, motion=motion):
                if not any(a - 2 <= i <= b + 2 for a, b in windows):
                    out.append(("speed_min", i, 2))
    if signal.gripper_index is not None:
        g = values[:, signal.gripper_index]
        if np.ptp(g) > 1e-9 * max(1.0, float(np.max(np.abs(g)))):
            # which way is closed is not in the data: an episode is taken to start with the gripper open
            closed = "low" if g[0] - np.min(g) > 0.5 * np.ptp(g) else "high"
            for kind, i in gripper_events(g, closed):
                inside = any(a <= i <= b for a, b in windows)
                out.append(("gripper_close" if kind == "grasp" else "gripper_open", i, 0 if inside else 1))
    return [SignalEvent(kind, int(i), float(ts[i]), tier) for kind, i, tier in sorted(out, key=lambda e: (e[1], e[0]))]


def episode_grounding(episode: Mapping[str, Any], column: str = "observation.state",
                      gripper_index: int | None = None) -> Grounding:
    """Signal and events of an episode, or a Grounding with `note` saying why there are none."""
    signal, values, note = resolve_signal(episode, column, gripper_index)
    if signal is None or values is None:
        return Grounding(None, (), note)
    events = episode_events(episode, signal, values)
    if not events:
        return Grounding(signal, (), f"{signal.column}: no rest, gripper change or speed minimum found")
    return Grounding(signal, tuple(events), None)
