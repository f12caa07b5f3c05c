"""The policy interface: `frame_indices(episode)` is the one primitive, `timestamps(episode)` its exact times."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...dataset.records import Episode

if TYPE_CHECKING:
    from .compose import PolicyUnion

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
        from .constructors import union

        if not isinstance(other, KeyframePolicy):
            return NotImplemented
        return union(self, other)


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
