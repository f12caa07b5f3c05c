"""Keyframe policies: deterministic rules that turn an episode into frame timestamps.

Every policy returns *indices into the episode's frames* and the matching timestamps taken verbatim
from the episode's float32 parquet `timestamp` values (never recomputed in floating point), so a
keyframe time always names a real frame, bit for bit. Policies are small frozen dataclasses: they
pickle, compare by value and have a stable `repr`/`spec()`, which keeps `datasets` fingerprints stable.

Motion-aware keyframes follow the classic keyframe heuristic of robot-learning work (PerAct, C2F-ARM,
RVT): frames where the gripper opens or closes and frames where the arm comes to rest, read from the
robot's own signals (`observation.state` / `action`) in the data parquet.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..utils.timeline import evenly_spaced, nearest_frame_indices

logger = logging.getLogger(__name__)

Episode = Mapping[str, Any]

__all__ = [
    "At",
    "Cap",
    "EveryFrame",
    "Fps",
    "KeyframeEvent",
    "KeyframePolicy",
    "Motion",
    "PolicyUnion",
    "Turns",
    "Uniform",
    "at",
    "cap",
    "episode_timestamps",
    "every_frame",
    "fps",
    "motion",
    "parse_policy",
    "read_episode_signals",
    "uniform",
    "union",
]


# -- helpers ------------------------------------------------------------------------------------------
def episode_timestamps(episode: Episode) -> np.ndarray:
    """The episode's frame timestamps as float32 (the exact parquet values), checked to be sorted."""
    ts = np.asarray(episode["timestamps"], dtype=np.float32)
    if ts.ndim != 1:
        raise ValueError(f"episode {episode.get('episode_index')}: 'timestamps' must be 1-D, got shape {ts.shape}")
    if len(ts) > 1 and np.any(np.diff(ts.astype(np.float64)) <= 0):
        raise ValueError(f"episode {episode.get('episode_index')}: frame timestamps are not strictly increasing")
    return ts


def _period(ts: np.ndarray, episode: Episode) -> float:
    fps_value = episode.get("fps")
    if fps_value:
        return 1.0 / float(fps_value)
    if len(ts) > 1:
        return float(np.median(np.diff(ts.astype(np.float64))))
    return 1.0


def _fmt(x: float) -> str:
    """Shortest round-tripping text of a number (1.0 -> '1', 0.25 -> '0.25')."""
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


# -- base ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyframePolicy:
    """Base of all policies. Subclasses implement `frame_indices`; everything else derives from it."""

    name: ClassVar[str] = ""

    def frame_indices(self, episode: Episode) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def indices(self, episode: Episode) -> np.ndarray:
        """Alias of `frame_indices`."""
        return self.frame_indices(episode)

    def timestamps(self, episode: Episode) -> np.ndarray:
        """Keyframe timestamps (float32, exact parquet values), ascending."""
        return episode_timestamps(episode)[self.frame_indices(episode)]

    def __call__(self, episode: Episode) -> list[float]:
        """Keyframe timestamps as Python floats (each exactly a float32 parquet value)."""
        return [float(t) for t in self.timestamps(episode)]

    def spec(self) -> str:
        """The `parse_policy` string of this policy (round-trips)."""
        raise NotImplementedError

    def __add__(self, other: KeyframePolicy) -> PolicyUnion:
        return union(self, other)

    __or__ = __add__

    def cap(self, n: int) -> Cap:
        return Cap(self, n)


@dataclass(frozen=True)
class Uniform(KeyframePolicy):
    """`n` frames spread evenly over the episode by frame index (first and last frame included)."""

    n: int = 8
    name: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"uniform: n must be >= 1, got {self.n}")

    def frame_indices(self, episode: Episode) -> np.ndarray:
        length = len(episode_timestamps(episode))
        return evenly_spaced(length, self.n)

    def spec(self) -> str:
        return f"uniform:{self.n}"


@dataclass(frozen=True)
class Fps(KeyframePolicy):
    """One frame every `1/hz` seconds from the first frame, each snapped to the nearest real frame."""

    hz: float = 1.0
    name: ClassVar[str] = "fps"

    def __post_init__(self) -> None:
        if not self.hz > 0:
            raise ValueError(f"fps: hz must be > 0, got {self.hz}")

    def frame_indices(self, episode: Episode) -> np.ndarray:
        ts = episode_timestamps(episode)
        if len(ts) == 0:
            return np.zeros(0, dtype=np.int64)
        start, end = float(ts[0]), float(ts[-1])
        # integer steps avoid accumulating float error over long episodes
        count = int(math.floor((end - start) * self.hz + 1e-6)) + 1
        times = start + np.arange(count, dtype=np.float64) / self.hz
        return np.unique(nearest_frame_indices(ts, times))

    def spec(self) -> str:
        return f"fps:{_fmt(self.hz)}"


@dataclass(frozen=True)
class At(KeyframePolicy):
    """Given episode times (seconds), each snapped to the nearest frame.

    A time further than `tolerance` seconds (default: half a frame period) outside the episode raises.
    """

    times: tuple[float, ...] = ()
    tolerance: float | None = None
    name: ClassVar[str] = "at"

    def __post_init__(self) -> None:
        object.__setattr__(self, "times", tuple(float(t) for t in self.times))

    def frame_indices(self, episode: Episode) -> np.ndarray:
        ts = episode_timestamps(episode)
        if not self.times:
            return np.zeros(0, dtype=np.int64)
        if len(ts) == 0:
            raise ValueError(f"at: episode {episode.get('episode_index')} has no frames")
        tol = self.tolerance if self.tolerance is not None else 0.5 * _period(ts, episode)
        for t in self.times:
            if t < float(ts[0]) - tol or t > float(ts[-1]) + tol:
                raise ValueError(
                    f"at: time {t} s is outside episode {episode.get('episode_index')} "
                    f"[{float(ts[0])}, {float(ts[-1])}] s (tolerance {tol:.4g} s)"
                )
        return np.unique(nearest_frame_indices(ts, self.times))

    def spec(self) -> str:
        out = "at:" + ",".join(_fmt(t) for t in self.times)
        if self.tolerance is not None:
            out += f",tolerance={_fmt(self.tolerance)}"
        return out


@dataclass(frozen=True)
class EveryFrame(KeyframePolicy):
    """Every frame of the episode."""

    name: ClassVar[str] = "every_frame"

    def frame_indices(self, episode: Episode) -> np.ndarray:
        return np.arange(len(episode_timestamps(episode)), dtype=np.int64)

    def spec(self) -> str:
        return "every_frame"


# -- robot signals ------------------------------------------------------------------------------------
_SIGNAL_CACHE: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
_SIGNAL_CACHE_SIZE = 64
_SIGNAL_LOCK = threading.Lock()


def _column_to_2d(column: Any) -> np.ndarray:
    """A parquet column of fixed-size or variable lists (or scalars) as an (n, d) float64 array."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        if n == 0:
            return np.zeros((0, 0))
        values = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        if len(values) % n:
            raise ValueError("rows of unequal length")
        return values.reshape(n, -1)
    return arr.to_numpy(zero_copy_only=False).astype(np.float64).reshape(n, 1)


def read_episode_signals(episode: Episode, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Numeric columns of one episode from its data parquet, as (length, dim) float64 arrays.

    Reads only the row groups whose `episode_index` statistics include the episode (LeRobot v3 writes
    one row group per episode) and only the requested columns. Keys that are absent are left out.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = Path(episode["root"]) / episode["data_file"]
    index = int(episode["episode_index"])
    stat = path.stat()
    cache_key = (str(path), stat.st_mtime_ns, stat.st_size, index, tuple(keys))
    with _SIGNAL_LOCK:
        hit = _SIGNAL_CACHE.get(cache_key)
        if hit is not None:
            _SIGNAL_CACHE.move_to_end(cache_key)
            return hit
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    present = [k for k in keys if k in names]
    out: dict[str, np.ndarray] = {}
    if present:
        ep_col = pf.schema_arrow.get_field_index("episode_index")
        groups = []
        for g in range(pf.metadata.num_row_groups):
            st = pf.metadata.row_group(g).column(ep_col).statistics
            if st is None or not st.has_min_max or st.min <= index <= st.max:
                groups.append(g)
        table = pf.read_row_groups(groups, columns=[*present, "episode_index"])
        table = table.filter(pc.equal(table["episode_index"], index))
        for k in present:
            try:
                out[k] = _column_to_2d(table[k])
            except (ValueError, TypeError) as exc:
                logger.debug("%s: column %r of episode %d is not numeric (%s)", path, k, index, exc)
    with _SIGNAL_LOCK:
        _SIGNAL_CACHE[cache_key] = out
        while len(_SIGNAL_CACHE) > _SIGNAL_CACHE_SIZE:
            _SIGNAL_CACHE.popitem(last=False)
    return out


def _episode_signals(episode: Episode, keys: Sequence[str], length: int) -> dict[str, np.ndarray]:
    """Signals carried by the row itself (frame-level batches) or else read from the data parquet."""
    out: dict[str, np.ndarray] = {}
    missing = []
    for k in keys:
        value = episode.get(k)
        if value is not None and len(value) == length:
            try:
                arr = np.asarray(value, dtype=np.float64)
                out[k] = arr.reshape(length, -1)
                continue
            except (ValueError, TypeError):
                pass
        missing.append(k)
    if missing and episode.get("root") and episode.get("data_file"):
        read = read_episode_signals(episode, missing)
        out.update({k: v for k, v in read.items() if len(v) == length})
    return out


# -- signal names and robust rest detection -------------------------------------------------------------
_GRIPPER_WORDS = {"gripper", "grip", "grasp", "finger", "fingers", "claw", "jaw", "hand"}
_POSITION_WORDS = {"x", "y", "z"}
_ORIENTATION_WORDS = {"roll", "pitch", "yaw", "rx", "ry", "rz", "qx", "qy", "qz", "qw", "quat", "quaternion",
                      "rot", "rotation", "orientation", "ori", "euler", "axis", "angle"}
_INFO_CACHE: dict[tuple[str, int], dict[str, Any]] = {}


def _tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", str(name).lower()) if t}


def feature_names(root: str | Path | None, key: str) -> list[str] | None:
    """`meta/info.json` features[key]["names"] as a flat list (lerobot writes a list, older files a dict of one)."""
    if not root:
        return None
    path = Path(root) / "meta" / "info.json"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    info = _INFO_CACHE.get((str(path), stamp))
    if info is None:
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        _INFO_CACHE[(str(path), stamp)] = info
    names = (info.get("features") or {}).get(key, {}).get("names")
    if isinstance(names, dict):
        lists = [v for v in names.values() if isinstance(v, list)]
        names = lists[0] if len(lists) == 1 else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return list(names)


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


@dataclass(frozen=True)
class ArmMotion:
    """Per-frame arm speed in units of each dimension's own range per second (see `arm_motion`)."""

    speed: np.ndarray  # (n,) combined speed, drift removed
    position: np.ndarray  # (n, k) raw positions of the dimensions that move
    scale: np.ndarray  # (k,) robust range of each of those dimensions
    noise: np.ndarray  # (k,) sensor noise (standard deviation) of each


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
    padded = np.pad(arm, ((w // 2, w // 2), (0, 0)), mode="edge")
    kernel = np.ones(w) / w
    smooth = np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(arm.shape[1])], axis=1)
    v = np.gradient(smooth, t, axis=0) / np.where(moving, scale, 1.0)
    # sensor noise from the second differences of the quietest frames (motion curvature would inflate it)
    crude = np.sqrt((v[:, moving] ** 2).sum(axis=1))[1:-1]
    quiet = crude <= np.percentile(crude, 30)
    d2 = np.abs(np.diff(arm, n=2, axis=0))[quiet]
    noise = 1.4826 * np.median(d2, axis=0) / math.sqrt(6.0)
    active = moving & (scale > 20 * noise)
    if not active.any():
        return None
    pos, scale, noise, v = arm[:, active], scale[active], noise[active], v[:, active]
    if v.shape[1] > 1:  # drift: what a dimension does while the other dimensions hold still
        mag = np.abs(v)
        drift = np.zeros(v.shape[1])
        for k in range(v.shape[1]):
            others = np.median(np.delete(mag, k, axis=1), axis=1)
            held = others <= 0.1 * max(float(np.percentile(others, 95)), 1e-12)
            if held.sum() >= 3:
                drift[k] = np.median(v[held, k])
        v = v - drift
    # dead band: velocity within 3 sigma of what the sensor noise alone gives (sigma * fps / w after the
    # w-frame moving average and the central difference) counts as none
    floor = 3.0 * noise / (w * period) / scale
    v = np.sign(v) * np.maximum(np.abs(v) - floor, 0.0)
    return ArmMotion(speed=np.sqrt((v * v).sum(axis=1)), position=pos, scale=scale, noise=noise)


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
    t = np.asarray(ts, dtype=np.float64)
    period = float(np.median(np.diff(t)))
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


@dataclass(frozen=True)
class KeyframeEvent:
    """One motion keyframe candidate: what happened at which frame."""

    kind: str  # "grasp" (gripper closes), "release" (gripper opens), "rest" (arm comes to rest), "start", "end"
    index: int
    timestamp: float


_MOTION_ALIASES = {
    "max": "max_keyframes",
    "spacing": "min_spacing",
    "gripper": "gripper_index",
    "state": "state_key",
    "action": "action_key",
    "arm": "arm_indices",
    "ends": "include_ends",
}


@dataclass(frozen=True)
class Motion(KeyframePolicy):
    """Motion-aware keyframes from the robot's own signals.

    Candidates, by priority: gripper changes ("grasp": closing complete, "release": opening starts),
    then frames where the arm comes to rest (joint/end-effector speed below `rest_speed` x the
    episode's 95th-percentile speed for at least `rest_seconds`), then the first and last frame. Candidates closer than `min_spacing` seconds
    to an already chosen one are dropped; at most `max_keyframes` are kept. The gripper is entry
    `gripper_index` of `gripper_key` ("auto": the state, else the action) and is assumed to move
    between two levels (any units: it is normalised per episode). Without a usable signal (no column,
    constant values) the policy falls back to `uniform(fallback)`.
    """

    state_key: str = "observation.state"
    action_key: str = "action"
    gripper_key: str = "auto"
    gripper_index: int = -1
    gripper_closed: str = "high"
    arm_key: str = "auto"
    arm_indices: tuple[int, ...] | None = None
    rest_speed: float = 0.1
    rest_seconds: float = 0.2
    rest_anchor: str = "start"
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
    def _signals(self, episode: Episode, length: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        keys = [k for k in dict.fromkeys([self.state_key, self.action_key, self.gripper_key, self.arm_key])
                if k and k != "auto"]
        sig = _episode_signals(episode, keys, length)

        def pick(key: str, with_gripper: bool) -> np.ndarray | None:
            candidates = [self.state_key, self.action_key] if key == "auto" else [key]
            for k in candidates:
                arr = sig.get(k)
                if arr is None or arr.shape[1] == 0:
                    continue
                names = None if with_gripper else feature_names(episode.get("root"), k)
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
        """(kind, frame) of the edges of each closed interval of the gripper signal.

        The signal is normalised to 0..1 per episode (closed = high, or low with `gripper_closed="low"`)
        and switches state with hysteresis at 30 % / 70 %. Each switch is then moved to the edge of the
        closed plateau: "grasp" is the first frame at which closing is complete (the end of the monotone
        rise that crossed 70 %), "release" the first frame at which opening starts (the start of the
        monotone fall that crossed 30 %). For a binary command both are the step itself.
        """
        lo, hi = float(np.min(g)), float(np.max(g))
        rng = hi - lo
        if rng <= 1e-9 * max(1.0, abs(hi)):
            return []
        gn = (g - lo) / rng
        if self.gripper_closed == "low":
            gn = 1.0 - gn
        eps = 1e-3
        n = len(gn)
        closed = gn[0] >= 0.5
        out = []
        for k in range(1, n):
            if not closed and gn[k] >= 0.7:
                closed = True
                j = k  # walk forward to the end of the rise: closing complete
                while j + 1 < n and gn[j + 1] - gn[j] > eps:
                    j += 1
                out.append(("grasp", j))
            elif closed and gn[k] <= 0.3:
                closed = False
                j = k  # walk back to the start of the fall: opening starts
                while j > 0 and gn[j - 1] - gn[j] > eps:
                    j -= 1
                out.append(("release", min(j + 1, k)))
        return out

    def rest_windows(self, arm: np.ndarray, ts: np.ndarray, period: float) -> list[tuple[int, int]]:
        """[start, end] frame ranges where the arm is at rest, not touching the episode ends (see `rest_windows`)."""
        return rest_windows(arm, ts, rest_speed=self.rest_speed, rest_seconds=self.rest_seconds)

    def events(self, episode: Episode) -> list[KeyframeEvent]:
        """Every candidate (before spacing and cap), sorted by frame; empty when no usable signal."""
        ts = episode_timestamps(episode)
        n = len(ts)
        if n == 0:
            return []
        gripper, arm = self._signals(episode, n)
        found: list[tuple[str, int]] = []
        if gripper is not None:
            found += self.gripper_events(gripper)
        if arm is not None:
            for start, end in self.rest_windows(arm, ts, _period(ts, episode)):
                anchor = {"start": start, "middle": (start + end) // 2, "end": end}[self.rest_anchor]
                found.append(("rest", anchor))
        if not found:
            return []
        if self.include_ends:
            found += [("start", 0), ("end", n - 1)]
        return [KeyframeEvent(kind, int(i), float(ts[i])) for kind, i in sorted(found, key=lambda e: (e[1], e[0]))]

    def frame_indices(self, episode: Episode) -> np.ndarray:
        ts = episode_timestamps(episode)
        events = self.events(episode)
        if not events:
            logger.debug("motion: episode %s has no usable gripper/arm signal; using uniform:%d",
                         episode.get("episode_index"), self.fallback)
            return Uniform(self.fallback).frame_indices(episode)
        priority = {"grasp": 0, "release": 0, "rest": 1, "start": 2, "end": 2}
        chosen: list[int] = []
        times = ts.astype(np.float64)
        for ev in sorted(events, key=lambda e: (priority[e.kind], e.index)):
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
                text = _fmt(value)
            else:
                text = str(value)
            opts.append(f"{f.name}={text}")
        return "motion" + (":" + ",".join(opts) if opts else "")


# -- composition --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyUnion(KeyframePolicy):
    """All frames chosen by any of the policies (each frame once)."""

    policies: tuple[KeyframePolicy, ...] = field(default_factory=tuple)

    def frame_indices(self, episode: Episode) -> np.ndarray:
        parts = [p.frame_indices(episode) for p in self.policies]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def spec(self) -> str:
        return "+".join(p.spec() for p in self.policies)


@dataclass(frozen=True)
class Cap(KeyframePolicy):
    """At most `n` frames of `policy`.

    On a union the earlier terms win: all frames of the first term (evenly thinned if they alone
    exceed `n`), then the new frames of the next term, evenly thinned to the slots left, and so on.
    """

    policy: KeyframePolicy = field(default_factory=lambda: Uniform(8))
    n: int = 8

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"cap: n must be >= 1, got {self.n}")

    def frame_indices(self, episode: Episode) -> np.ndarray:
        terms = self.policy.policies if isinstance(self.policy, PolicyUnion) else (self.policy,)
        chosen = np.zeros(0, dtype=np.int64)
        for term in terms:
            left = self.n - len(chosen)
            if left <= 0:
                break
            new = np.setdiff1d(term.frame_indices(episode), chosen)
            chosen = np.union1d(chosen, new[evenly_spaced(len(new), left)])
        return chosen.astype(np.int64)

    def spec(self) -> str:
        return f"{self.policy.spec()}@{self.n}"


@dataclass(frozen=True)
class Turns(KeyframePolicy):
    """Every `step`-th frame of `policy`, from its `offset`-th: how cameras take turns on shared ticks
    (camera k of n gets `Turns(fps(1), n, k)`)."""

    policy: KeyframePolicy = field(default_factory=lambda: Fps(1.0))
    step: int = 1
    offset: int = 0

    def __post_init__(self) -> None:
        if self.step < 1 or not 0 <= self.offset < self.step:
            raise ValueError(f"turns: need step >= 1 and 0 <= offset < step, got step {self.step}, offset {self.offset}")
        if isinstance(self.policy, (PolicyUnion, Cap, Turns)):
            raise ValueError("turns: take turns over a single policy term (uniform, fps, at, motion, every_frame)")

    def frame_indices(self, episode: Episode) -> np.ndarray:
        return self.policy.frame_indices(episode)[self.offset :: self.step]

    def spec(self) -> str:
        return f"{self.policy.spec()}~{self.offset}/{self.step}"


# -- constructors -------------------------------------------------------------------------------------
def uniform(n: int = 8) -> Uniform:
    return Uniform(int(n))


def fps(hz: float = 1.0) -> Fps:
    return Fps(float(hz))


def at(*times: float, tolerance: float | None = None) -> At:
    if len(times) == 1 and isinstance(times[0], Iterable):
        times = tuple(times[0])  # at([0.5, 1.0]) works too
    return At(tuple(float(t) for t in times), tolerance)


def every_frame() -> EveryFrame:
    return EveryFrame()


def motion(**options: Any) -> Motion:
    return Motion(**{_MOTION_ALIASES.get(k, k): v for k, v in options.items()})


def union(*policies: KeyframePolicy) -> PolicyUnion:
    flat: list[KeyframePolicy] = []
    for p in policies:
        flat.extend(p.policies if isinstance(p, PolicyUnion) else (p,))
    return PolicyUnion(tuple(flat))


def cap(policy: KeyframePolicy, n: int) -> Cap:
    return Cap(policy, int(n))


# -- parsing ------------------------------------------------------------------------------------------
def _parse_motion(args: str) -> Motion:
    if not args:
        return Motion()
    types = {f.name: f.type for f in fields(Motion)}
    kwargs: dict[str, Any] = {}
    for part in args.split(","):
        key, sep, value = part.partition("=")
        key = _MOTION_ALIASES.get(key.strip(), key.strip())
        if not sep or key not in types:
            raise ValueError(
                f"motion: bad option {part!r}; use key=value with keys "
                f"{sorted(types) + sorted(_MOTION_ALIASES)}"
            )
        value = value.strip()
        kind = str(types[key])
        if key == "arm_indices":
            kwargs[key] = tuple(int(v) for v in value.split("/") if v)
        elif kind == "bool":
            kwargs[key] = value.lower() in ("1", "true", "yes", "on")
        elif kind == "int":
            kwargs[key] = int(value)
        elif kind == "float":
            kwargs[key] = float(value)
        else:
            kwargs[key] = value
    return Motion(**kwargs)


def _parse_term(term: str) -> KeyframePolicy:
    if "~" in term:  # `fps:1~0/2`: turns
        base, _, turn = term.rpartition("~")
        offset, _, step = turn.partition("/")
        try:
            return Turns(_parse_term(base), int(step), int(offset))
        except ValueError as exc:
            raise ValueError(f"keyframe policy {term!r}: {exc}") from exc
    name, _, args = term.strip().partition(":")
    name = name.strip().lower().replace("-", "_")
    try:
        if name == "uniform":
            return Uniform(int(args) if args else 8)
        if name == "fps":
            return Fps(float(args) if args else 1.0)
        if name == "at":
            times, tol = [], None
            for part in args.split(","):
                part = part.strip()
                if part.startswith("tolerance="):
                    tol = float(part.split("=", 1)[1])
                elif part:
                    times.append(float(part))
            return At(tuple(times), tol)
        if name in ("every_frame", "all", "every"):
            return EveryFrame()
        if name == "motion":
            return _parse_motion(args)
    except ValueError as exc:
        raise ValueError(f"keyframe policy {term!r}: {exc}") from exc
    raise ValueError(
        f"unknown keyframe policy {term!r}; use uniform:N, fps:HZ, at:T1,T2,..., every_frame, "
        f"motion[:key=value,...], joined with '+', optionally capped with '@N'"
    )


def parse_policy(spec: str | KeyframePolicy) -> KeyframePolicy:
    """Parse `"uniform:8"`, `"fps:1"`, `"at:0,2.5"`, `"every_frame"`, `"motion"`, `"motion:max=12"`,
    unions `"motion+uniform:4"` and a cap on the whole `"motion+uniform:4@12"`."""
    if isinstance(spec, KeyframePolicy):
        return spec
    text = spec.strip()
    if not text:
        raise ValueError("empty keyframe policy")
    limit = None
    if "@" in text:
        text, _, n = text.rpartition("@")
        try:
            limit = int(n)
        except ValueError as exc:
            raise ValueError(f"keyframe policy {spec!r}: cap after '@' must be an integer, got {n!r}") from exc
    terms = [_parse_term(t) for t in text.split("+")]
    policy: KeyframePolicy = terms[0] if len(terms) == 1 else PolicyUnion(tuple(terms))
    return Cap(policy, limit) if limit is not None else policy

