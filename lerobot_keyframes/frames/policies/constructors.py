"""Short constructors, the spelling user code and module `keyframes` declarations use: `motion() | fps(1)`
(`union` is `base.union`)."""

from __future__ import annotations

from collections.abc import Iterable

from .base import KeyframePolicy
from .basic import At, EveryFrame, Fps, Uniform
from .compose import Cap
from .motion import MOTION_ALIASES, Motion

# the value types of `Motion`'s options (see its fields)
MotionOption = str | int | float | bool | tuple[int, ...] | None


def uniform(n: int = 8) -> Uniform:
    return Uniform(int(n))


def fps(hz: float = 1.0) -> Fps:
    return Fps(float(hz))


def at(*times: float | Iterable[float], tolerance: float | None = None) -> At:
    """`at(0.5, 1.0)`; `at([0.5, 1.0])` works too."""
    if len(times) == 1 and isinstance(times[0], Iterable):
        times = tuple(times[0])
    return At(tuple(float(t) for t in times), tolerance)  # type: ignore[arg-type]


def every_frame() -> EveryFrame:
    return EveryFrame()


def motion(**options: MotionOption) -> Motion:
    """`Motion` with these options; the short names of `MOTION_ALIASES` (`max=`, `spacing=`, ...) work too."""
    return Motion(**{MOTION_ALIASES.get(k, k): v for k, v in options.items()})  # type: ignore[arg-type]


def cap(policy: KeyframePolicy, n: int) -> Cap:
    return Cap(policy, int(n))
