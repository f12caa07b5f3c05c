"""The basic policies: frames by count (`uniform`), by rate (`fps`), at given times (`at`), or all of them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...utils.timeline import evenly_spaced, nearest_frame_indices
from .base import EpisodeLike, KeyframePolicy, fmt_number, frame_period, frame_times


@dataclass(frozen=True)
class Uniform(KeyframePolicy):
    """`n` frames spread evenly over the episode by frame index (first and last frame included)."""

    n: int = 8
    name: ClassVar[str] = "uniform"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"uniform: n must be >= 1, got {self.n}")

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:
        _, ts = frame_times(episode)
        return evenly_spaced(len(ts), self.n)

    def spec(self) -> str:
        return f"uniform:{self.n}"


@dataclass(frozen=True)
class Fps(KeyframePolicy):
    """One frame every `1/hz` seconds from the first frame, each snapped to the nearest real frame."""

    hz: float = 1.0
    name: ClassVar[str] = "fps"

    def __post_init__(self) -> None:
        if not (self.hz > 0 and math.isfinite(self.hz)):
            raise ValueError(f"fps: hz must be a finite number > 0, got {self.hz}")

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:
        _, ts = frame_times(episode)
        if len(ts) == 0:
            return np.zeros(0, dtype=np.int64)
        start, end = float(ts[0]), float(ts[-1])
        # integer steps avoid accumulating float error over long episodes
        count = int(math.floor((end - start) * self.hz + 1e-6)) + 1
        if count > 16 * len(ts):  # a rate far above the frame rate takes every frame (without allocating count)
            return np.arange(len(ts), dtype=np.int64)
        times = start + np.arange(count, dtype=np.float64) / self.hz
        return np.unique(nearest_frame_indices(ts, times))

    def spec(self) -> str:
        return f"fps:{fmt_number(self.hz)}"


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
        bad = [t for t in self.times if not math.isfinite(t)]
        if bad:  # nan would snap silently to some frame; inf is no time of an episode
            raise ValueError(f"at: times must be finite numbers of seconds, got {bad[0]}")

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:
        ep, ts = frame_times(episode)
        if not self.times:
            return np.zeros(0, dtype=np.int64)
        if len(ts) == 0:
            raise ValueError(f"at: episode {ep.episode_index} has no frames")
        tol = self.tolerance if self.tolerance is not None else 0.5 * frame_period(ts, ep)
        for t in self.times:
            if t < float(ts[0]) - tol or t > float(ts[-1]) + tol:
                raise ValueError(
                    f"at: time {t} s is outside episode {ep.episode_index} "
                    f"[{float(ts[0])}, {float(ts[-1])}] s (tolerance {tol:.4g} s)"
                )
        return np.unique(nearest_frame_indices(ts, self.times))

    def spec(self) -> str:
        out = "at:" + ",".join(fmt_number(t) for t in self.times)
        if self.tolerance is not None:
            out += f",tolerance={fmt_number(self.tolerance)}"
        return out


@dataclass(frozen=True)
class EveryFrame(KeyframePolicy):
    """Every frame of the episode."""

    name: ClassVar[str] = "every_frame"

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:
        _, ts = frame_times(episode)
        return np.arange(len(ts), dtype=np.int64)

    def spec(self) -> str:
        return "every_frame"
