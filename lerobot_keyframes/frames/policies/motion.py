"""The motion-aware policy: keyframes where the gripper closes or opens and where the arm comes to rest.

The classic keyframe heuristic of robot-learning work (PerAct, C2F-ARM, RVT), read from the robot's own
signals (`observation.state` / `action`): carried by a frame-level row, else read from the data parquet
(`dataset.signals`); the analysis itself is in `detection`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

import numpy as np

from ...dataset.records import Episode
from ...dataset.signals import episode_signals, feature_names
from .base import EpisodeLike, KeyframePolicy, fmt_number, frame_times
from .basic import Uniform
from .detection import GripperClosed, arm_dimensions, gripper_events, rest_windows

logger = logging.getLogger(__name__)

EventKind = Literal["grasp", "release", "rest", "start", "end"]
RestAnchor = Literal["start", "middle", "end"]  # which frame of a rest window is the keyframe

# short option names of `motion(...)` and `"motion:key=value"`
MOTION_ALIASES = {
    "max": "max_keyframes",
    "spacing": "min_spacing",
    "gripper": "gripper_index",
    "state": "state_key",
    "action": "action_key",
    "arm": "arm_indices",
    "ends": "include_ends",
}
_PRIORITY: dict[str, int] = {"grasp": 0, "release": 0, "rest": 1, "start": 2, "end": 2}


@dataclass(frozen=True)
class KeyframeEvent:
    """One motion keyframe candidate: what happened at which frame."""

    kind: EventKind  # "grasp" (gripper closes), "release" (gripper opens), "rest" (arm comes to rest), "start", "end"
    index: int
    timestamp: float


@dataclass(frozen=True)
class Motion(KeyframePolicy):
    """Motion-aware keyframes from the robot's own signals.

    Candidates, by priority: gripper changes ("grasp": closing complete, "release": opening starts),
    then frames where the arm comes to rest (joint/end-effector speed below `rest_speed` x the episode's
    95th-percentile speed for at least `rest_seconds`), then the first and last frame. Candidates closer
    than `min_spacing` seconds to an already chosen one are dropped; at most `max_keyframes` are kept. The
    gripper is entry `gripper_index` of `gripper_key` ("auto": the state, else the action) and is assumed
    to move between two levels (any units: it is normalised per episode). Without a usable signal (no
    column, constant values) the policy falls back to `uniform(fallback)`.
    """

    state_key: str = "observation.state"
    action_key: str = "action"
    gripper_key: str = "auto"  # a column, "auto" (the state, else the action) or "" (no gripper events)
    gripper_index: int = -1
    gripper_closed: GripperClosed = "high"
    arm_key: str = "auto"  # a column, "auto" or "" (no rest events)
    arm_indices: tuple[int, ...] | None = None
    rest_speed: float = 0.1
    rest_seconds: float = 0.2
    rest_anchor: RestAnchor = "start"
    include_ends: bool = True
    max_keyframes: int = 16
    min_spacing: float = 0.25
    fallback: int = 8
    name: ClassVar[str] = "motion"

    def __post_init__(self) -> None:
        if self.arm_indices is not None:
            object.__setattr__(self, "arm_indices", tuple(int(i) for i in self.arm_indices))
        if self.gripper_closed not in ("high", "low"):
            raise ValueError(f"motion: gripper_closed must be 'high' or 'low', got {self.gripper_closed!r}")
        if self.rest_anchor not in ("start", "middle", "end"):
            raise ValueError(f"motion: rest_anchor must be start, middle or end, got {self.rest_anchor!r}")
        if self.max_keyframes < 1 or self.fallback < 1:
            raise ValueError("motion: max_keyframes and fallback must be >= 1")

    # signals -------------------------------------------------------------------------------------
    def _signals(self, ep: Episode, carried: Mapping[str, Any] | None
                 ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(gripper signal, arm columns) of the episode, each None when not usable."""
        keys = [k for k in dict.fromkeys([self.state_key, self.action_key, self.gripper_key, self.arm_key])
                if k and k != "auto"]
        sig = episode_signals(ep, keys, carried)

        def pick(key: str, with_gripper: bool) -> np.ndarray | None:
            candidates = [self.state_key, self.action_key] if key == "auto" else [key]
            for k in candidates:
                arr = sig.get(k)
                if arr is None or arr.shape[1] == 0:
                    continue
                names = None if with_gripper else feature_names(ep.root, k)
                col = self._gripper_column(arr) if with_gripper else self._arm_columns(arr, names)
                if col is not None and np.ptp(col, axis=0).max() > 1e-9:
                    return col
            return None

        gripper = pick(self.gripper_key, True) if self.gripper_key else None
        arm = pick(self.arm_key, False) if self.arm_key else None
        return gripper, arm

    def _gripper_column(self, arr: np.ndarray) -> np.ndarray | None:
        d = arr.shape[1]
        if not -d <= self.gripper_index < d:
            return None
        return arr[:, self.gripper_index]

    def _arm_columns(self, arr: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray | None:
        d = arr.shape[1]
        if self.arm_indices is not None:
            idx = [i for i in self.arm_indices if -d <= i < d]
        else:
            idx = arm_dimensions(names, d, self.gripper_index)
        return arr[:, idx] if idx else None

    # events --------------------------------------------------------------------------------------
    def gripper_events(self, g: np.ndarray) -> list[tuple[str, int]]:
        """(kind, frame) of the edges of each closed interval of the gripper signal (see `detection.gripper_events`)."""
        return list(gripper_events(g, self.gripper_closed))

    def rest_windows(self, arm: np.ndarray, ts: np.ndarray) -> list[tuple[int, int]]:
        """[start, end] frame ranges where the arm is at rest, not touching the episode ends (see `rest_windows`)."""
        return rest_windows(arm, ts, rest_speed=self.rest_speed, rest_seconds=self.rest_seconds)

    def events(self, episode: EpisodeLike) -> list[KeyframeEvent]:
        """Every candidate (before spacing and cap), sorted by frame; empty when no usable signal."""
        ep, ts = frame_times(episode)
        return self._events(ep, ts, _carried(episode))

    def _events(self, ep: Episode, ts: np.ndarray, carried: Mapping[str, Any] | None) -> list[KeyframeEvent]:
        n = len(ts)
        if n == 0:
            return []
        gripper, arm = self._signals(ep, carried)
        found: list[tuple[str, int]] = []
        if gripper is not None:
            found += self.gripper_events(gripper)
        if arm is not None:
            for start, end in self.rest_windows(arm, ts):
                anchor = {"start": start, "middle": (start + end) // 2, "end": end}[self.rest_anchor]
                found.append(("rest", anchor))
        if not found:
            return []
        if self.include_ends:
            found += [("start", 0), ("end", n - 1)]
        return [KeyframeEvent(kind, int(i), float(ts[i]))  # type: ignore[arg-type]
                for kind, i in sorted(found, key=lambda e: (e[1], e[0]))]

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:
        ep, ts = frame_times(episode)
        events = self._events(ep, ts, _carried(episode))
        if not events:
            logger.debug("motion: episode %s has no usable gripper/arm signal; using uniform:%d",
                         ep.episode_index, self.fallback)
            return Uniform(self.fallback).frame_indices(ep)
        chosen: list[int] = []
        times = ts.astype(np.float64)
        for ev in sorted(events, key=lambda e: (_PRIORITY[e.kind], e.index)):
            if len(chosen) >= self.max_keyframes:
                break
            if all(abs(times[ev.index] - times[c]) >= self.min_spacing - 1e-9 for c in chosen):
                chosen.append(ev.index)
        return np.array(sorted(set(chosen)), dtype=np.int64)

    def spec(self) -> str:
        defaults = Motion()
        opts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(defaults, f.name):
                continue
            if isinstance(value, tuple):
                text = "/".join(str(v) for v in value)
            elif isinstance(value, bool):
                text = "1" if value else "0"
            elif isinstance(value, float):
                text = fmt_number(value)
            else:
                text = str(value)
            opts.append(f"{f.name}={text}")
        return "motion" + (":" + ",".join(opts) if opts else "")


def _carried(episode: EpisodeLike) -> Mapping[str, Any] | None:
    """The per-frame columns an episode carries (a frame-level row grouped per episode brings the robot's
    signals along): a record's `signals`, or the row itself."""
    if isinstance(episode, Episode):
        return episode.signals or None
    return episode
