"""Keyframe policies: deterministic rules that turn an episode into frames.

A policy implements one primitive, `frame_indices(episode)` (ascending int64 indices into the episode's
frames); `timestamps(episode)` gives their times taken verbatim from the episode's float32 parquet
`timestamp` values (never recomputed in floating point), so a keyframe time always names a real frame,
bit for bit. An episode is a `dataset.Episode` or its episode-table row. Policies are small frozen
dataclasses: they pickle, compare by value and have a stable `repr`/`spec()`, which keeps `datasets`
fingerprints stable. `a | b` is the union of two policies.

Modules: `base` (the interface), `basic` (uniform, fps, at, every_frame), `detection` (motion analysis of
the robot's signals), `motion` (the motion-aware policy), `compose` (union, cap, turns), `constructors`
(the short spellings), `parsing` (spec strings).
"""

from __future__ import annotations

from .base import EpisodeLike, KeyframePolicy
from .basic import At, EveryFrame, Fps, Uniform
from .compose import Cap, PolicyUnion, Turns
from .constructors import MotionOption, at, cap, every_frame, fps, motion, uniform, union
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
    "KeyframeEvent",
    "KeyframePolicy",
    "Motion",
    "MotionOption",
    "PolicyUnion",
    "RestAnchor",
    "Turns",
    "Uniform",
    "arm_dimensions",
    "arm_motion",
    "at",
    "cap",
    "every_frame",
    "fps",
    "gripper_events",
    "gripper_from_names",
    "motion",
    "parse_policy",
    "rest_windows",
    "speed_minima",
    "uniform",
    "union",
]
