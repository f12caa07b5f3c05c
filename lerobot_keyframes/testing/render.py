"""Procedural tabletop scene for the sample dataset: episode plans, trajectories and camera renderers.

A gripper approaches an object, grasps it, carries it to a target, releases it and retreats. Everything
is plain numpy on small bounding boxes so thousands of frames render in about a second, and everything
is drawn from seeded generators so a seed always gives the same pixels. The plan is also the ground
truth (phase boundaries, grasp and release frames) that keyframe and subtask evaluation compare to.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PHASES = ("approach", "grasp", "carry", "release", "retreat")
STATE_NAMES = ["x", "y", "z", "gripper"]

# Colour names used in task strings, with the RGB the renderer draws for them.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (205, 38, 38),
    "green": (36, 160, 64),
    "blue": (40, 84, 210),
    "yellow": (236, 204, 36),
    "purple": (140, 60, 175),
    "orange": (240, 128, 24),
}
OBJECT_SHAPES = ("cube", "ball")
TARGET_KINDS = ("pad", "plate")

# Texture of the table plane: table coordinates in [0, 1]^2 (x left to right, y far to near), with a
# margin of floor around it so cameras that look past the table edge still see something.
_TEX_SIZE = 1024
_TEX_MARGIN = 0.25
_TEX_SPAN = 1.0 + 2 * _TEX_MARGIN

_MIN_PHASE_FRAMES = 3
MIN_EPISODE_FRAMES = _MIN_PHASE_FRAMES * len(PHASES)

# Gripper geometry, in table units.
_FINGER_LEN = 0.11
_FINGER_W = 0.022
_PALM_H = 0.03
_OPEN_HALF_GAP = 0.1
_ARM_W = 0.05
_WRIST_CAM_ABOVE_TCP = 0.25
_WRIST_TAN_HALF_FOV = 0.6
_PAD_COLOR = (214, 216, 222)  # fingertip pads: neutral, so no task colour appears on the robot


@dataclass(frozen=True)
class TaskSpec:
    """What one task asks for; the task string is built from these words and the renderer draws them."""

    object_color: str
    object_shape: str
    target_color: str
    target_kind: str

    @property
    def text(self) -> str:
        return (
            f"pick up the {self.object_color} {self.object_shape} "
            f"and place it on the {self.target_color} {self.target_kind}"
        )


@dataclass(frozen=True)
class EpisodePlan:
    """Everything that varies per episode: task, placement, sizes and timing (frames, end exclusive)."""

    index: int
    task: TaskSpec
    length: int
    object_xy: tuple[float, float]
    target_xy: tuple[float, float]
    home_xyz: tuple[float, float, float]
    rest_xyz: tuple[float, float, float]
    hover_z: float
    object_half: float
    target_radius: float
    phases: dict[str, tuple[int, int]]
    grasp_frame: int
    release_frame: int
    texture_seed: int


@dataclass(frozen=True)
class Trajectory:
    """Per-frame motion. `closure` is the measured gripper (0 open, 1 closed), `command` the binary command."""

    tcp: np.ndarray  # (n, 3) gripper tool point: x, y and height of the held object's centre
    closure: np.ndarray  # (n,)
    command: np.ndarray  # (n,)
    object_xyz: np.ndarray  # (n, 3) object centre

    def state(self, rng: np.random.Generator) -> np.ndarray:
        """observation.state: tool point with a little sensor noise, then the measured gripper."""
        xyz = self.tcp + rng.normal(0.0, 1e-4, self.tcp.shape)
        return np.concatenate([xyz, self.closure[:, None]], axis=1).astype(np.float32)

    def action(self) -> np.ndarray:
        """action: the next frame's tool point (a leader arm leads by one tick), then the gripper command."""
        nxt = np.concatenate([self.tcp[1:], self.tcp[-1:]], axis=0)
        return np.concatenate([nxt, self.command[:, None]], axis=1).astype(np.float32)


def task_pool(seed: int, count: int) -> list[TaskSpec]:
    """`count` distinct tasks drawn from the seed (object colour differs from target colour)."""
    rng = np.random.default_rng([seed, 7_000_001])
    combos = [
        TaskSpec(oc, shape, tc, kind)
        for oc in COLORS
        for shape in OBJECT_SHAPES
        for tc in COLORS
        for kind in TARGET_KINDS
        if oc != tc
    ]
    order = rng.permutation(len(combos))
    pool: list[TaskSpec] = []
    used_colors: set[str] = set()
    # Prefer tasks whose object colours differ, so episodes look different at a glance.
    for i in order:
        spec = combos[int(i)]
        if spec.object_color in used_colors and len(used_colors) < len(COLORS):
            continue
        pool.append(spec)
        used_colors.add(spec.object_color)
        if len(pool) == count:
            return pool
    for i in order:
        spec = combos[int(i)]
        if spec not in pool:
            pool.append(spec)
            if len(pool) == count:
                break
    return pool


def _split_phases(rng: np.random.Generator, length: int) -> dict[str, tuple[int, int]]:
    fractions = np.array([0.26, 0.13, 0.30, 0.12, 0.19]) * rng.uniform(0.8, 1.2, len(PHASES))
    fractions /= fractions.sum()
    extra = length - _MIN_PHASE_FRAMES * len(PHASES)
    sizes = [_MIN_PHASE_FRAMES] * len(PHASES)
    cuts = np.round(np.cumsum(fractions) * extra).astype(int)
    prev = 0
    for i, cut in enumerate(cuts):
        sizes[i] += int(cut) - prev
        prev = int(cut)
    sizes[-1] += length - sum(sizes)
    phases: dict[str, tuple[int, int]] = {}
    start = 0
    for name, size in zip(PHASES, sizes):
        phases[name] = (start, start + size)
        start += size
    return phases


def plan_episode(seed: int, index: int, task: TaskSpec, fps: int, episode_seconds: float) -> EpisodePlan:
    """Draw one episode's placement and timing from (seed, index) only, independent of the episode count."""
    rng = np.random.default_rng([seed, index, 11])
    length = max(MIN_EPISODE_FRAMES, int(round(episode_seconds * fps * rng.uniform(0.9, 1.1))))
    phases = _split_phases(rng, length)
    while True:
        obj = rng.uniform([0.15, 0.3], [0.85, 0.85])
        tgt = rng.uniform([0.15, 0.3], [0.85, 0.85])
        if np.hypot(*(obj - tgt)) >= 0.35:
            break
    g0, g1 = phases["grasp"]
    r0, r1 = phases["release"]
    close_frames = max(1, min(g1 - g0 - 1, int(round(0.45 * (g1 - g0)))))
    settle_frames = max(1, min(r1 - r0 - 1, int(round(0.4 * (r1 - r0)))))
    home = (0.5 + rng.uniform(-0.08, 0.08), 0.42 + rng.uniform(-0.05, 0.05), 0.42)
    rest = (home[0] + rng.uniform(-0.05, 0.05), home[1] + rng.uniform(-0.05, 0.05), 0.4)
    return EpisodePlan(
        index=index,
        task=task,
        length=length,
        object_xy=(float(obj[0]), float(obj[1])),
        target_xy=(float(tgt[0]), float(tgt[1])),
        home_xyz=(float(home[0]), float(home[1]), home[2]),
        rest_xyz=(float(rest[0]), float(rest[1]), rest[2]),
        hover_z=float(rng.uniform(0.2, 0.28)),
        object_half=float(rng.uniform(0.045, 0.06)),
        target_radius=float(rng.uniform(0.08, 0.095)),
        phases=phases,
        grasp_frame=g0 + close_frames,
        release_frame=r0 + settle_frames,
        texture_seed=int(rng.integers(2**31)),
    )


def _min_jerk(t: np.ndarray) -> np.ndarray:
    return t * t * t * (10 - 15 * t + 6 * t * t)


def trajectory(plan: EpisodePlan) -> Trajectory:
    """Piecewise minimum-jerk motion through the plan's waypoints; still during grasp and release."""
    n = plan.length
    h = plan.object_half
    ox, oy = plan.object_xy
    tx, ty = plan.target_xy
    a0, a1 = plan.phases["approach"]
    g0, g1 = plan.phases["grasp"]
    c0, c1 = plan.phases["carry"]
    r0, r1 = plan.phases["release"]
    t0, _ = plan.phases["retreat"]

    def mid(lo: int, hi: int, frac: float) -> int:
        return min(hi - 1, max(lo + 1, lo + int(round(frac * (hi - lo)))))

    keys: list[tuple[int, tuple[float, float, float]]] = [
        (0, plan.home_xyz),
        (mid(0, g0, 0.6), (ox, oy, plan.hover_z)),
        (g0, (ox, oy, h)),
        (c0, (ox, oy, h)),
        (mid(c0, r0, 0.3), (ox, oy, plan.hover_z)),
        (mid(c0, r0, 0.75), (tx, ty, plan.hover_z)),
        (r0, (tx, ty, h)),
        (t0, (tx, ty, h)),
        (mid(t0, n - 1, 0.4), (tx, ty, plan.hover_z)),
        (n - 1, plan.rest_xyz),
    ]
    tcp = np.empty((n, 3))
    for (f0, p0), (f1, p1) in zip(keys, keys[1:]):
        if f1 <= f0:
            tcp[f0] = p1
            continue
        s = _min_jerk((np.arange(f0, f1 + 1) - f0) / (f1 - f0))
        tcp[f0 : f1 + 1] = np.asarray(p0) + (np.asarray(p1) - np.asarray(p0)) * s[:, None]

    frames = np.arange(n)
    closure = np.zeros(n)
    k_close = plan.grasp_frame - g0
    closing = (frames >= g0) & (frames <= plan.grasp_frame)
    closure[closing] = _min_jerk((frames[closing] - g0) / k_close)
    closure[(frames > plan.grasp_frame) & (frames < plan.release_frame)] = 1.0
    k_open = max(1, r1 - plan.release_frame)
    opening = frames >= plan.release_frame
    closure[opening] = 1.0 - _min_jerk(np.clip((frames[opening] - plan.release_frame + 1) / k_open, 0, 1))
    command = ((frames >= g0) & (frames < plan.release_frame)).astype(np.float64)

    obj = np.empty((n, 3))
    obj[:] = (ox, oy, h)
    held = (frames >= plan.grasp_frame) & (frames < plan.release_frame)
    obj[held] = tcp[held]
    obj[frames >= plan.release_frame] = (tx, ty, h)
    return Trajectory(tcp=tcp, closure=closure, command=command, object_xyz=obj)


# -- drawing primitives (clipped to the image, work on the bounding box only) -------------------------
def _box(img: np.ndarray, u0: float, v0: float, u1: float, v1: float) -> tuple[int, int, int, int] | None:
    h, w = img.shape[:2]
    a, b = max(0, int(math.floor(u0))), min(w, int(math.ceil(u1)))
    c, d = max(0, int(math.floor(v0))), min(h, int(math.ceil(v1)))
    if a >= b or c >= d:
        return None
    return a, b, c, d


def _rect(img: np.ndarray, u0: float, v0: float, u1: float, v1: float, color: Sequence[float]) -> None:
    box = _box(img, u0, v0, u1, v1)
    if box is not None:
        a, b, c, d = box
        img[c:d, a:b] = color


def _ellipse_mask(
    img: np.ndarray, cu: float, cv: float, ru: float, rv: float
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    ru, rv = max(ru, 0.5), max(rv, 0.5)
    box = _box(img, cu - ru, cv - rv, cu + ru + 1, cv + rv + 1)
    if box is None:
        return None
    a, b, c, d = box
    uu = (np.arange(a, b) + 0.5 - cu) / ru
    vv = (np.arange(c, d) + 0.5 - cv) / rv
    return box, vv[:, None] ** 2 + uu[None, :] ** 2


def _disc(img: np.ndarray, cu: float, cv: float, ru: float, rv: float, color: Sequence[float]) -> None:
    found = _ellipse_mask(img, cu, cv, ru, rv)
    if found is not None:
        (a, b, c, d), r2 = found
        img[c:d, a:b][r2 <= 1.0] = color


def _ball(img: np.ndarray, cu: float, cv: float, r: float, color: Sequence[float]) -> None:
    found = _ellipse_mask(img, cu, cv, r, r)
    if found is None:
        return
    (a, b, c, d), r2 = found
    inside = r2 <= 1.0
    uu = (np.arange(a, b) + 0.5 - cu) / max(r, 0.5)
    vv = (np.arange(c, d) + 0.5 - cv) / max(r, 0.5)
    light = np.clip(
        0.55 + 0.45 * (-(uu[None, :] + vv[:, None]) * 0.7 + np.sqrt(np.clip(1 - r2, 0, 1))), 0, 1.25
    )
    shaded = np.clip(np.asarray(color, dtype=np.float32) * light[..., None], 0, 255)
    img[c:d, a:b][inside] = shaded[inside].astype(np.uint8)


def _shadow(img: np.ndarray, cu: float, cv: float, ru: float, rv: float, strength: float) -> None:
    if strength < 0.01:
        return
    found = _ellipse_mask(img, cu, cv, ru, rv)
    if found is None:
        return
    (a, b, c, d), r2 = found
    factor = 1.0 - strength * np.sqrt(np.clip(1.0 - r2, 0, 1)).astype(np.float32)
    region = img[c:d, a:b]
    region[:] = (region * factor[..., None]).astype(np.uint8)


def _cube(img: np.ndarray, cu: float, cv: float, side: float, color: Sequence[float], top: float) -> None:
    """A cube seen slightly from above: front face, lighter top band, darker right band."""
    col = np.asarray(color, dtype=np.float32)
    half = side / 2
    _rect(img, cu - half, cv - half - top, cu + half, cv - half, np.clip(col * 1.25 + 20, 0, 255))
    _rect(img, cu - half, cv - half, cu + half, cv + half, col)
    _rect(img, cu + half * 0.55, cv - half, cu + half, cv + half, col * 0.72)
    _rect(img, cu - half, cv + half * 0.8, cu + half, cv + half, col * 0.6)


def _top_cube(img: np.ndarray, cu: float, cv: float, side: float, color: Sequence[float]) -> None:
    """A cube seen from straight above: top face with a darker rim."""
    col = np.asarray(color, dtype=np.float32)
    half = side / 2
    _rect(img, cu - half, cv - half, cu + half, cv + half, col * 0.7)
    rim = max(1.0, side * 0.1)
    _rect(img, cu - half + rim, cv - half + rim, cu + half - rim, cv + half - rim, np.clip(col * 1.1, 0, 255))


# -- textures -----------------------------------------------------------------------------------------
def _value_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random (cells+1)^2 grid, bilinearly upsampled one axis at a time.

    Plain indexing, no matrix product: a threaded BLAS busy-waits and stalls badly when several
    generator processes (pytest-xdist workers) share few cores.
    """
    grid = rng.random((cells + 1, cells + 1))

    def axis(size: int) -> tuple[np.ndarray, np.ndarray]:
        pos = np.linspace(0, cells, size)
        lo = np.minimum(pos.astype(int), cells - 1)
        return lo, (pos - lo)

    ly, fy = axis(shape[0])
    lx, fx = axis(shape[1])
    rows = grid[:, lx] * (1 - fx) + grid[:, lx + 1] * fx  # (cells + 1, width)
    return rows[ly] * (1 - fy)[:, None] + rows[ly + 1] * fy[:, None]


def _tex_index(v: float) -> int:
    return int(round((v + _TEX_MARGIN) / _TEX_SPAN * _TEX_SIZE))


def _paint_disc(
    tex: np.ndarray, cx: float, cy: float, r: float, color: Sequence[float], inner: float = 0.0
) -> None:
    """Paint the ring inner*r <= d < r around table point (cx, cy) into the texture (bounding box only)."""
    i0, i1 = max(0, _tex_index(cy - r) - 1), min(_TEX_SIZE, _tex_index(cy + r) + 2)
    j0, j1 = max(0, _tex_index(cx - r) - 1), min(_TEX_SIZE, _tex_index(cx + r) + 2)
    ys = (np.arange(i0, i1) + 0.5) / _TEX_SIZE * _TEX_SPAN - _TEX_MARGIN
    xs = (np.arange(j0, j1) + 0.5) / _TEX_SIZE * _TEX_SPAN - _TEX_MARGIN
    d = np.hypot(xs[None, :] - cx, ys[:, None] - cy)
    tex[i0:i1, j0:j1][(d < r) & (d >= inner * r)] = color


def _paint_square(tex: np.ndarray, cx: float, cy: float, r: float, color: Sequence[float]) -> None:
    tex[_tex_index(cy - r) : _tex_index(cy + r), _tex_index(cx - r) : _tex_index(cx + r)] = color


def table_texture(plan: EpisodePlan) -> np.ndarray:
    """The table plane seen from above (uint8, _TEX_SIZE^2), with the target and a distractor painted in."""
    rng = np.random.default_rng(plan.texture_seed)
    n = _TEX_SIZE
    coords = ((np.arange(n) + 0.5) / n * _TEX_SPAN - _TEX_MARGIN).astype(np.float32)
    low = _value_noise(rng, (n, n), 6).astype(np.float32)
    # Floor: grey tiles around the table.
    tiles = (np.floor(coords / 0.25)[:, None] + np.floor(coords / 0.25)[None, :]) % 2
    floor = 74 + 10 * tiles + 14 * (low - 0.5)
    tex = np.empty((n, n, 3), dtype=np.float32)
    tex[..., 0] = floor
    tex[..., 1] = floor + 2
    tex[..., 2] = floor + 12
    # Table top: wood grain along x, low-frequency stains, fine grain noise.
    a, b = _tex_index(0.0), _tex_index(1.0)
    y = coords[a:b, None]
    warp = _value_noise(rng, (b - a, b - a), 4).astype(np.float32)
    grain = np.sin(2 * np.pi * (y * rng.uniform(14, 20) + 1.8 * warp))
    shade = 0.92 + 0.05 * grain + 0.12 * (low[a:b, a:b] - 0.5)
    shade += rng.standard_normal((b - a, b - a), dtype=np.float32) * 0.025
    wood = np.array([170, 140, 106], dtype=np.float32) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    tex[a:b, a:b] = shade[..., None] * wood
    rim = max(2, int(0.012 * n / _TEX_SPAN))
    for sl in (
        (slice(a, a + rim), slice(a, b)),
        (slice(b - rim, b), slice(a, b)),
        (slice(a, b), slice(a, a + rim)),
        (slice(a, b), slice(b - rim, b)),
    ):
        tex[sl] *= 0.7

    # A neutral distractor (a grey coaster) away from object and target.
    for _ in range(100):
        dx, dy = rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.9)
        far = [np.hypot(dx - px, dy - py) > 0.22 for px, py in (plan.object_xy, plan.target_xy)]
        if all(far):
            _paint_disc(tex, dx, dy, 0.052, (110, 110, 108))
            _paint_disc(tex, dx, dy, 0.045, (150, 150, 148))
            break

    tx, ty = plan.target_xy
    r = plan.target_radius
    color = np.asarray(COLORS[plan.task.target_color], dtype=np.float32)
    if plan.task.target_kind == "pad":
        _paint_square(tex, tx, ty, r, color * 0.75)
        _paint_square(tex, tx, ty, r - 0.01, color)
    else:
        _paint_disc(tex, tx, ty, r, color * 0.8)
        _paint_disc(tex, tx, ty, r * 0.78, np.clip(color * 1.2 + 30, 0, 255), inner=0.7 / 0.78)
        _paint_disc(tex, tx, ty, r * 0.7, color)
    return np.clip(tex, 0, 255).astype(np.uint8)


def _sample(tex: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Nearest-neighbour lookup of table coordinates in the texture (x, y broadcast to the output)."""
    n = tex.shape[0]
    ix = np.clip(((x + _TEX_MARGIN) / _TEX_SPAN * n).astype(np.int64), 0, n - 1)
    iy = np.clip(((y + _TEX_MARGIN) / _TEX_SPAN * n).astype(np.int64), 0, n - 1)
    flat = np.broadcast_to(iy * n + ix, np.broadcast_shapes(ix.shape, iy.shape))
    return np.take(tex.reshape(-1, 3), flat.ravel(), axis=0).reshape(*flat.shape, 3)


# -- cameras ------------------------------------------------------------------------------------------
class Camera:
    """Renders one camera of one episode; frames are uint8 RGB (height, width, 3)."""

    def __init__(self, plan: EpisodePlan, traj: Trajectory, tex: np.ndarray, width: int, height: int) -> None:
        self.plan = plan
        self.traj = traj
        self.w = width
        self.h = height
        self.color = COLORS[plan.task.object_color]

    def render(self, f: int) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError


class FrontCamera(Camera):
    """A fixed camera in front of the table, slightly above it (mild perspective)."""

    def __init__(
        self, plan: EpisodePlan, traj: Trajectory, tex: np.ndarray, width: int, height: int, variant: int = 0
    ) -> None:
        super().__init__(plan, traj, tex, width, height)
        vrng = np.random.default_rng([variant, 5])
        self.v_far = height * (0.3 if variant == 0 else vrng.uniform(0.22, 0.36))
        self.shift = 0.0 if variant == 0 else vrng.uniform(-0.08, 0.08)
        self.span = 1.3
        self.background = self._background(tex, plan)

    def _scale(self, y: np.ndarray | float) -> np.ndarray | float:
        return 0.65 + 0.35 * np.clip(y, -0.3, 1.3)

    def project(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        """Pixel (u, v) of table point (x, y) at height z, and pixels per table unit there."""
        s = float(self._scale(y))
        px = self.w * self.span * s
        u = self.w / 2 + self.shift * self.w + (x - 0.5) * px
        v = self.v_far + (self.h - self.v_far) * y - z * 0.85 * px
        return u, v, px

    def _background(self, tex: np.ndarray, plan: EpisodePlan) -> np.ndarray:
        rng = np.random.default_rng([plan.texture_seed, 1])
        vv = np.arange(self.h) + 0.5
        uu = np.arange(self.w) + 0.5
        y = (vv - self.v_far) / (self.h - self.v_far)
        s = self._scale(y)
        x = 0.5 + (uu[None, :] - self.w / 2 - self.shift * self.w) / (self.w * self.span * s[:, None])
        img = _sample(tex, x, np.broadcast_to(y[:, None], x.shape)).astype(np.float32)
        wall_rows = vv < self.v_far
        grad = np.linspace(1.0, 0.82, int(wall_rows.sum()))[:, None, None]
        wall = np.array([198, 204, 212], dtype=np.float32) * grad
        wall = wall + 10 * (_value_noise(rng, (int(wall_rows.sum()), self.w), 5)[..., None] - 0.5)
        img[wall_rows] = np.broadcast_to(wall, (int(wall_rows.sum()), self.w, 3))
        # A shelf and a window frame on the wall give the codec some edges.
        _rect(img, 0, self.v_far * 0.55, self.w, self.v_far * 0.62, (120, 96, 70))
        _rect(img, self.w * 0.62, self.v_far * 0.08, self.w * 0.9, self.v_far * 0.45, (170, 196, 222))
        _rect(img, self.w * 0.755, self.v_far * 0.08, self.w * 0.765, self.v_far * 0.45, (230, 230, 230))
        return np.clip(img, 0, 255).astype(np.uint8)

    def render(self, f: int) -> np.ndarray:
        img = self.background.copy()
        p = self.plan
        gx, gy, gz = self.traj.tcp[f]
        ox, oy, oz = self.traj.object_xyz[f]
        h = p.object_half
        # Shadows on the table.
        su, sv, spx = self.project(ox, oy, 0.0)
        if oz > h + 1e-3:
            _shadow(img, su, sv, 1.2 * h * spx, 0.45 * h * spx, 0.35)
        su, sv, spx = self.project(gx, gy, 0.0)
        _shadow(img, su, sv, 0.1 * spx, 0.035 * spx, 0.4 * math.exp(-gz / 0.2))
        # The object.
        u, v, px = self.project(ox, oy, oz)
        if p.task.object_shape == "cube":
            _cube(img, u, v, 2 * h * px, self.color, 0.5 * h * px)
        else:
            _ball(img, u, v, h * px, self.color)
        # The gripper: arm from the top edge, palm, two fingers whose gap follows the closure.
        u, v_tip, px = self.project(gx, gy, gz - 0.8 * h)
        _, v_palm, _ = self.project(gx, gy, gz - 0.8 * h + _FINGER_LEN)
        gap = (h + 0.004) + (1 - self.traj.closure[f]) * (_OPEN_HALF_GAP - h)
        arm_w = _ARM_W * px
        _rect(img, u - arm_w / 2, 0, u + arm_w / 2, v_palm, (128, 134, 146))
        _rect(img, u - arm_w / 2, 0, u - arm_w / 4, v_palm, (160, 166, 178))
        palm_half = (_OPEN_HALF_GAP + _FINGER_W) * px
        _rect(img, u - palm_half, v_palm - _PALM_H * px, u + palm_half, v_palm, (58, 60, 68))
        fw = _FINGER_W * px
        for sign in (-1.0, 1.0):
            cu = u + sign * (gap * px + fw / 2)
            _rect(img, cu - fw / 2, v_palm, cu + fw / 2, v_tip, (42, 42, 48))
            _rect(img, cu - fw / 2, v_tip - 0.25 * (v_tip - v_palm), cu + fw / 2, v_tip, _PAD_COLOR)
        return img


class WristCamera(Camera):
    """A camera on the gripper looking down between the fingers; its view follows the arm."""

    def __init__(self, plan: EpisodePlan, traj: Trajectory, tex: np.ndarray, width: int, height: int) -> None:
        super().__init__(plan, traj, tex, width, height)
        self.tex = tex
        self.uu = (np.arange(width) + 0.5 - width / 2) / width
        self.vv = (np.arange(height) + 0.5 - height / 2) / width

    def _project(self, f: int, x: float, y: float, z: float) -> tuple[float, float, float]:
        gx, gy, gz = self.traj.tcp[f]
        cam_z = gz + _WRIST_CAM_ABOVE_TCP
        half = max(cam_z - z, 0.03) * _WRIST_TAN_HALF_FOV
        px = self.w / (2 * half)
        return self.w / 2 + (x - gx) * px, self.h / 2 + (y - gy - 0.02) * px, px

    def render(self, f: int) -> np.ndarray:
        p = self.plan
        gx, gy, gz = self.traj.tcp[f]
        half = (gz + _WRIST_CAM_ABOVE_TCP) * _WRIST_TAN_HALF_FOV
        x = gx + self.uu[None, :] * 2 * half
        y = gy + 0.02 + self.vv[:, None] * 2 * half
        img = _sample(self.tex, x, y)
        # The arm's shadow darkens the middle of the view when close to the table.
        _shadow(img, self.w / 2, self.h * 0.55, self.w * 0.35, self.h * 0.4, 0.45 * math.exp(-gz / 0.1))
        ox, oy, oz = self.traj.object_xyz[f]
        h = p.object_half
        u, v, px = self._project(f, ox, oy, oz + h)
        if p.task.object_shape == "cube":
            _top_cube(img, u, v, 2 * h * px, self.color)
        else:
            _ball(img, u, v, h * px, self.color)
        # Fingers enter from the bottom of the view; the palm is a dark band at the bottom edge.
        _, _, tip_px = self._project(f, gx, gy, gz)
        gap = (h + 0.004) + (1 - self.traj.closure[f]) * (_OPEN_HALF_GAP - h)
        fw = _FINGER_W * tip_px
        for sign in (-1.0, 1.0):
            cu = self.w / 2 + sign * (gap * tip_px + fw / 2)
            _rect(img, cu - fw / 2, self.h * 0.38, cu + fw / 2, self.h, (40, 40, 46))
            _rect(img, cu - fw / 2, self.h * 0.38, cu + fw / 2, self.h * 0.46, _PAD_COLOR)
        _rect(img, 0, self.h * 0.9, self.w, self.h, (52, 54, 62))
        return img


class TopCamera(Camera):
    """A fixed camera straight above the table (orthographic)."""

    def __init__(self, plan: EpisodePlan, traj: Trajectory, tex: np.ndarray, width: int, height: int) -> None:
        super().__init__(plan, traj, tex, width, height)
        self.px = min(width, height) / 1.15
        uu = (np.arange(width) + 0.5 - width / 2) / self.px + 0.5
        vv = (np.arange(height) + 0.5 - height / 2) / self.px + 0.5
        self.background = _sample(tex, uu[None, :], vv[:, None])

    def _uv(self, x: float, y: float) -> tuple[float, float]:
        return self.w / 2 + (x - 0.5) * self.px, self.h / 2 + (y - 0.5) * self.px

    def render(self, f: int) -> np.ndarray:
        img = self.background.copy()
        p = self.plan
        gx, gy, gz = self.traj.tcp[f]
        ox, oy, oz = self.traj.object_xyz[f]
        h = p.object_half
        u, v = self._uv(ox, oy)
        zoom = 1 + 0.6 * (oz - h)
        _shadow(
            img, u + 0.3 * oz * self.px, v + 0.3 * oz * self.px, 1.2 * h * self.px, 1.2 * h * self.px, 0.3
        )
        if p.task.object_shape == "cube":
            _top_cube(img, u, v, 2 * h * self.px * zoom, self.color)
        else:
            _ball(img, u, v, h * self.px * zoom, self.color)
        u, v = self._uv(gx, gy)
        zoom = 1 + 0.6 * gz
        px = self.px * zoom
        gap = (h + 0.004) + (1 - self.traj.closure[f]) * (_OPEN_HALF_GAP - h)
        _rect(img, u - _ARM_W * px / 2, 0, u + _ARM_W * px / 2, v - 0.02 * px, (128, 134, 146))
        palm_half = (_OPEN_HALF_GAP + _FINGER_W) * px
        _rect(img, u - palm_half, v - 0.03 * px, u + palm_half, v - 0.01 * px, (58, 60, 68))
        fw = _FINGER_W * px
        for sign in (-1.0, 1.0):
            cu = u + sign * (gap * px + fw / 2)
            _rect(img, cu - fw / 2, v - 0.03 * px, cu + fw / 2, v + 0.03 * px, (42, 42, 48))
        return img


def make_camera(
    name: str, plan: EpisodePlan, traj: Trajectory, tex: np.ndarray, width: int, height: int
) -> Camera:
    """Pick a viewpoint from the camera name: *wrist*/*hand* follow the gripper, *top*/*overhead* look down,
    anything else is a front view (names other than "front" get a slightly different, fixed pose)."""
    lowered = name.lower()
    if "wrist" in lowered or "hand" in lowered or "gripper" in lowered:
        return WristCamera(plan, traj, tex, width, height)
    if "top" in lowered or "overhead" in lowered or "bird" in lowered:
        return TopCamera(plan, traj, tex, width, height)
    variant = 0 if lowered == "front" else zlib.crc32(name.encode()) or 1
    return FrontCamera(plan, traj, tex, width, height, variant=variant)


def add_noise(img: np.ndarray, rng: np.random.Generator, amplitude: int = 3) -> np.ndarray:
    """Sensor noise, fresh every frame, so the encoder has real work to do."""
    noise = rng.integers(-amplitude, amplitude + 1, img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


BADGE_BITS = 10  # frame numbers 0..1023


def badge_cell(width: int) -> int:
    """Side of one badge cell in pixels: big enough to survive lossy codecs and downscaling."""
    return max(4, width // 20)


def draw_frame_badge(img: np.ndarray, frame_index: int) -> np.ndarray:
    """Draw `frame_index` as a row of black/white squares (LSB first) along the top-left edge, in place.

    Optional (`make_sample_dataset(frame_badge=True)`): lets a test read back which frame a player shows.
    """
    cell = badge_cell(img.shape[1])
    for bit in range(BADGE_BITS):
        img[:cell, bit * cell:(bit + 1) * cell] = 255 if (frame_index >> bit) & 1 else 0
    return img


def badge_centres(width: int) -> list[tuple[int, int]]:
    """(x, y) pixel centres of the badge cells of a `width`-wide frame, LSB first."""
    cell = badge_cell(width)
    return [(bit * cell + cell // 2, cell // 2) for bit in range(BADGE_BITS)]


def read_frame_badge(luma: Sequence[float]) -> int:
    """The frame number from the cells' brightness (0..255, LSB first, as sampled at `badge_centres`)."""
    return sum(1 << bit for bit, v in enumerate(luma) if v >= 128)
