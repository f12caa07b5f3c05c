"""Keyframe policies: deterministic rules that turn an episode into frames.

A policy implements one primitive, `frame_indices(episode)` (ascending int64 indices into the episode's
frames); `timestamps(episode)` gives their times taken verbatim from the episode's float32 parquet
`timestamp` values (never recomputed in floating point), so a keyframe time always names a real frame,
bit for bit. An episode is a `dataset.Episode` or its episode-table row. Policies are small frozen
dataclasses: they pickle, compare by value and have a stable `repr`/`spec()`, which keeps `datasets`
fingerprints stable. `a | b` is the union of two policies.

Modules: `base` (the interface and the union), `basic` (uniform, fps, at, every_frame), `detection`
(motion analysis of the robot's signals), `events` (an episode's robot events: rests, gripper changes, speed
minima), `motion` (the motion-aware policy), `compose` (cap, turns), `constructors` (the short spellings),
`parsing` (spec strings).
"""

from __future__ import annotations

from .base import EpisodeLike, KeyframePolicy, PolicyUnion, union
from .basic import At, EveryFrame, Fps, Uniform
from .compose import Cap, Turns
from .constructors import MotionOption, at, cap, every_frame, fps, motion, uniform
from .detection import (
    ArmMotion,
    GripperClosed,
    arm_dimensions,
    arm_motion,
    gripper_events,
    gripper_from_names,
    rest_windows,
    speed_minima,
)
from .events import Grounding, RobotSignal, SignalEvent, episode_events, episode_grounding, resolve_signal
from .motion import EventKind, KeyframeEvent, Motion, RestAnchor
from .parsing import parse_policy

__all__ = [
    "ArmMotion",
    "At",
    "Cap",
    "EpisodeLike",
    "EventKind",
    "EveryFrame",
    "Fps",
    "GripperClosed",
    "Grounding",
    "KeyframeEvent",
    "KeyframePolicy",
    "Motion",
    "MotionOption",
    "PolicyUnion",
    "RestAnchor",
    "RobotSignal",
    "SignalEvent",
    "Turns",
    "Uniform",
    "arm_dimensions",
    "arm_motion",
    "at",
    "cap",
    "episode_events",
    "episode_grounding",
    "every_frame",
    "fps",
    "gripper_events",
    "gripper_from_names",
    "motion",
    "parse_policy",
    "resolve_signal",
    "rest_windows",
    "speed_minima",
    "uniform",
    "union",
]
