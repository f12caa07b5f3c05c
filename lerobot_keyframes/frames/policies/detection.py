"""Motion analysis of the robot's own signals: which dimensions are the arm and the gripper, how fast the arm
moves (robust to units, sensor noise and slow drift), where it rests or slows, where the gripper closes/opens.

Pure numpy on arrays already read (`dataset.signals` reads them); used by the `motion` policy and by the
robot events of an episode (`events`), which ground subtask boundaries.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

GripperClosed = Literal["high", "low"]  # which end of the gripper signal's range means closed
GripperEventKind = Literal["grasp", "release"]

_GRIPPER_WORDS = {"gripper", "grip", "grasp", "finger", "fingers", "claw", "jaw", "hand"}
_POSITION_WORDS = {"x", "y", "z"}
_ORIENTATION_WORDS = {"roll", "pitch", "yaw", "rx", "ry", "rz", "qx", "qy", "qz", "qw", "quat", "quaternion",
                      "rot", "rotation", "orientation", "ori", "euler", "axis", "angle"}


# -- signal names -----------------------------------------------------------------------------------------
def _tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", str(name).lower()) if t}


def gripper_from_names(names: Sequence[str] | None) -> int | None:
    """Index of the one dimension whose name says gripper (gripper, claw, finger, ...); None unless exactly one."""
    if not names:
        return None
    hits = [i for i, n in enumerate(names) if _tokens(n) & _GRIPPER_WORDS]
    return hits[0] if len(hits) == 1 else None


def arm_dimensions(names: Sequence[str] | None, d: int, gripper: int | None) -> list[int]:
    """The dimensions that say where the arm is: every non-gripper one, or only the Cartesian position ones
    (x, y, z) when the names also list orientation ones (yaw/pitch/roll, quaternions), which drift slowly."""
    g = gripper % d if gripper is not None and -d <= gripper < d else None
    dims = [i for i in range(d) if i != g]
    if names and len(names) == d:
        position = [i for i in dims if _tokens(names[i]) & _POSITION_WORDS and not _tokens(names[i]) & _ORIENTATION_WORDS]
        orientation = [i for i in dims if _tokens(names[i]) & _ORIENTATION_WORDS]
        if position and orientation:
            return position
    return dims


# -- arm speed --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmMotion:
    """Per-frame arm speed in units of each dimension's own range per second (see `arm_motion`)."""

    speed: np.ndarray  # (n,) combined speed, drift removed
    position: np.ndarray  # (n, k) raw positions of the dimensions that move
    scale: np.ndarray  # (k,) robust range of each of those dimensions
    noise: np.ndarray  # (k,) sensor noise (standard deviation) of each


def _smooth(arm: np.ndarray, w: int) -> np.ndarray:
    """A `w`-frame moving average of each dimension, edges held."""
    padded = np.pad(arm, ((w // 2, w // 2), (0, 0)), mode="edge")
    kernel = np.ones(w) / w
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(arm.shape[1])], axis=1)


def _sensor_noise(arm: np.ndarray, v: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Noise (standard deviation) of each dimension from the second differences of the quietest frames
    (motion curvature would inflate it elsewhere)."""
    crude = np.sqrt((v[:, moving] ** 2).sum(axis=1))[1:-1]
    quiet = crude <= np.percentile(crude, 30)
    d2 = np.abs(np.diff(arm, n=2, axis=0))[quiet]
    return 1.4826 * np.median(d2, axis=0) / math.sqrt(6.0)


def _remove_drift(v: np.ndarray) -> np.ndarray:
    """Subtract each dimension's median velocity over the frames where the other dimensions hold still."""
    if v.shape[1] <= 1:
        return v
    mag = np.abs(v)
    drift = np.zeros(v.shape[1])
    for k in range(v.shape[1]):
        others = np.median(np.delete(mag, k, axis=1), axis=1)
        held = others <= 0.1 * max(float(np.percentile(others, 95)), 1e-12)
        if held.sum() >= 3:
            drift[k] = np.median(v[held, k])
    return v - drift


def arm_motion(arm: np.ndarray, ts: np.ndarray) -> ArmMotion | None:
    """Arm speed robust to units, sensor noise and slow drift; None when no dimension really moves.

    Each dimension is lightly smoothed (~0.1 s) and scaled by its own 1st-99th percentile range, so joints
    in radians and positions in metres weigh the same. A dimension whose range is under 20x its sensor
    noise (from the second differences of the quietest frames) carries no motion and is left out. A slow
    drift (a dimension's median velocity over the frames where the other dimensions hold still) is
    subtracted, so an orientation column creeping along while the arm holds still does not read as motion,
    and a dead band of 3 sigma of the noise-only velocity keeps noisy dimensions from reading as motion.
    """
    arm = np.asarray(arm, dtype=np.float64).reshape(len(arm), -1)
    n = len(arm)
    if n < 3 or arm.shape[1] == 0:
        return None
    t = np.asarray(ts, dtype=np.float64)
    period = float(np.median(np.diff(t))) if n > 1 else 1.0
    lo, hi = np.percentile(arm, [1, 99], axis=0)
    scale = hi - lo
    moving = scale > 1e-9 * np.maximum(1.0, np.abs(hi))
    if not moving.any():
        return None
    w = max(3, int(round(0.1 / period)) | 1)
    v = np.gradient(_smooth(arm, w), t, axis=0) / np.where(moving, scale, 1.0)
    noise = _sensor_noise(arm, v, moving)
    active = moving & (scale > 20 * noise)
    if not active.any():
        return None
    pos, scale, noise, v = arm[:, active], scale[active], noise[active], v[:, active]
    v = _remove_drift(v)
    # dead band: velocity within 3 sigma of what the sensor noise alone gives (sigma * fps / w after the
    # w-frame moving average and the central difference) counts as none
    floor = 3.0 * noise / (w * period) / scale
    v = np.sign(v) * np.maximum(np.abs(v) - floor, 0.0)
    return ArmMotion(speed=np.sqrt((v * v).sum(axis=1)), position=pos, scale=scale, noise=noise)


# -- rests and slow points --------------------------------------------------------------------------------
def _refine_window(m: ArmMotion, k: int, j: int, eps: np.ndarray, reach: int) -> tuple[int, int]:
    """The still run [k, j] moved to the frames within `eps` of where the arm holds at its start and its end."""
    n = len(m.position)
    core = max(2, (j - k + 1) // 3)
    hold_a = np.median(m.position[k : k + core], axis=0)
    hold_b = np.median(m.position[j - core + 1 : j + 1], axis=0)
    near_a = np.all(np.abs(m.position - hold_a) <= eps, axis=1)
    near_b = np.all(np.abs(m.position - hold_b) <= eps, axis=1)
    a = k
    while a - 1 >= max(0, k - reach) and near_a[a - 1]:
        a -= 1
    while a < min(j, k + reach) and not near_a[a]:
        a += 1
    b = j
    while b + 1 <= min(n - 1, j + reach) and near_b[b + 1]:
        b += 1
    while b > max(a, j - reach) and not near_b[b]:
        b -= 1
    return a, b


def rest_windows(arm: np.ndarray, ts: np.ndarray, *, rest_speed: float = 0.1, rest_seconds: float = 0.2,
                 include_ends: bool = False, motion: ArmMotion | None = None) -> list[tuple[int, int]]:
    """[start, end] frame ranges (inclusive) where the arm holds still for at least `rest_seconds`.

    Still means the `arm_motion` speed is at most `rest_speed` x its 95th percentile over the episode. The
    edges are then refined on the raw positions: `start` is the first frame already within noise (3 sigma,
    at least 0.05 % of the range) of where the arm holds at the start of the rest, `end` the last frame
    before it leaves where it holds at the end (so drift within the rest does not matter). Windows touching
    the first or last frame are dropped unless `include_ends`.
    """
    n = len(arm)
    m = motion if motion is not None else arm_motion(arm, ts)
    if m is None or n < 3:
        return []
    ref = float(np.percentile(m.speed, 95))
    if ref <= 1e-12:
        return []
    still = m.speed <= rest_speed * ref
    period = float(np.median(np.diff(np.asarray(ts, dtype=np.float64))))
    min_len = max(2, int(round(rest_seconds / period)))
    eps = np.maximum(3 * m.noise, 5e-4 * m.scale)
    reach = max(3, int(round(0.1 / period)) | 1)
    out = []
    k = 0
    while k < n:
        if not still[k]:
            k += 1
            continue
        j = k
        while j + 1 < n and still[j + 1]:
            j += 1
        if j - k + 1 >= min_len:
            a, b = _refine_window(m, k, j, eps, reach)
            if b - a + 1 >= min_len and (include_ends or (a > 0 and b < n - 1)):
                out.append((a, b))
        k = j + 1
    return out


def speed_minima(arm: np.ndarray, ts: np.ndarray, *, depth: float = 0.25, min_spacing_s: float = 0.3,
                 motion: ArmMotion | None = None) -> list[int]:
    """Frames where the arm slows to a local speed minimum below `depth` x its 95th-percentile speed
    without stopping long enough to count as a rest (e.g. a via point), one per `min_spacing_s`."""
    m = motion if motion is not None else arm_motion(arm, ts)
    if m is None:
        return []
    s = m.speed
    ref = float(np.percentile(s, 95))
    if ref <= 1e-12 or len(s) < 3:
        return []
    t = np.asarray(ts, dtype=np.float64)
    cand = [i for i in range(1, len(s) - 1) if s[i] <= s[i - 1] and s[i] < s[i + 1] and s[i] <= depth * ref]
    kept: list[int] = []
    for i in sorted(cand, key=lambda i: s[i]):
        if all(abs(t[i] - t[c]) >= min_spacing_s for c in kept):
            kept.append(i)
    return sorted(kept)


# -- gripper ----------------------------------------------------------------------------------------------
def gripper_events(g: np.ndarray, closed: GripperClosed = "high") -> list[tuple[GripperEventKind, int]]:
    """(kind, frame) of the edges of each closed interval of the gripper signal.

    The signal is normalised to 0..1 per episode (closed = high, or low with `closed="low"`) and switches
    state with hysteresis at 30 % / 70 %. Each switch is then moved to the edge of the closed plateau:
    "grasp" is the first frame at which closing is complete (the end of the monotone rise that crossed
    70 %), "release" the first frame at which opening starts (the start of the monotone fall that crossed
    30 %). For a binary command both are the step itself.
    """
    lo, hi = float(np.min(g)), float(np.max(g))
    rng = hi - lo
    if rng <= 1e-9 * max(1.0, abs(hi)):
        return []
    gn = (g - lo) / rng
    if closed == "low":
        gn = 1.0 - gn
    eps = 1e-3
    n = len(gn)
    is_closed = gn[0] >= 0.5
    out: list[tuple[GripperEventKind, int]] = []
    for k in range(1, n):
        if not is_closed and gn[k] >= 0.7:
            is_closed = True
            j = k  # walk forward to the end of the rise: closing complete
            while j + 1 < n and gn[j + 1] - gn[j] > eps:
                j += 1
            out.append(("grasp", j))
        elif is_closed and gn[k] <= 0.3:
            is_closed = False
            j = k  # walk back to the start of the fall: opening starts
            while j > 0 and gn[j - 1] - gn[j] > eps:
                j -= 1
            out.append(("release", min(j + 1, k)))
    return out
