"""The policy interface: `frame_indices(episode)` is the one primitive, `timestamps(episode)` its exact times;
`a | b` is their union (`PolicyUnion`, `union`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...dataset.records import Episode

# An `Episode`, or its episode-table row as `datasets` hands it to `map` (converted with `Episode.from_row`).
EpisodeLike = Episode | Mapping[str, Any]


@dataclass(frozen=True)
class KeyframePolicy:
    """Base of all policies. Subclasses implement `frame_indices`; `timestamps` derives from it. `a | b` is
    the union of two policies, `cap(policy, n)` limits the count.

    Compositions (`|`, `cap`, turns) hand the episode to their terms as given: pass an `Episode` to convert
    a row once; a row mapping is converted by each term (and `Motion` also reads robot signals it carries).
    """

    name: ClassVar[str] = ""

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:  # pragma: no cover - abstract
        """Ascending, distinct int64 indices into the episode's frames."""
        raise NotImplementedError

    def timestamps(self, episode: EpisodeLike) -> np.ndarray:
        """The keyframes' times: float32, ascending, each exactly a parquet `timestamp` of the episode."""
        return Episode.from_row(episode).timestamps[self.frame_indices(episode)]

    def spec(self) -> str:  # pragma: no cover - abstract
        """The `parse_policy` string of this policy (round-trips)."""
        raise NotImplementedError

    def __or__(self, other: KeyframePolicy) -> PolicyUnion:
        """The frames of either policy (set union)."""
        if not isinstance(other, KeyframePolicy):
            return NotImplemented
        return union(self, other)


@dataclass(frozen=True)
class PolicyUnion(KeyframePolicy):
    """All frames chosen by any of the policies (each frame once)."""

    policies: tuple[KeyframePolicy, ...] = field(default_factory=tuple)

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:
        parts = [p.frame_indices(episode) for p in self.policies]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def spec(self) -> str:
        return "+".join(p.spec() for p in self.policies)


def union(*policies: KeyframePolicy) -> PolicyUnion:
    """The frames of any of the policies; nested unions are flattened (the order of the terms is kept)."""
    flat: list[KeyframePolicy] = []
    for p in policies:
        flat.extend(p.policies if isinstance(p, PolicyUnion) else (p,))
    return PolicyUnion(tuple(flat))


def frame_times(episode: EpisodeLike) -> tuple[Episode, np.ndarray]:
    """The episode as a record and its timestamps, checked to be strictly increasing."""
    ep = Episode.from_row(episode)
    return ep, ep.check_timestamps()


def frame_period(ts: np.ndarray, episode: Episode) -> float:
    """Seconds between frames: 1 / fps, else the median spacing of the timestamps."""
    if episode.fps:
        return 1.0 / float(episode.fps)
    if len(ts) > 1:
        return float(np.median(np.diff(ts.astype(np.float64))))
    return 1.0


def fmt_number(x: float) -> str:
    """Shortest round-tripping text of a number (1.0 -> '1', 0.25 -> '0.25')."""
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))
