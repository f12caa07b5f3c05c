"""Policies made of policies: a cap on the count, cameras taking turns (the union, `a | b`, is in `base`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...utils.timeline import evenly_spaced
from .base import EpisodeLike, KeyframePolicy, PolicyUnion
from .basic import Fps, Uniform


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

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:
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

    def frame_indices(self, episode: EpisodeLike) -> np.ndarray:
        return self.policy.frame_indices(episode)[self.offset :: self.step]

    def spec(self) -> str:
        return f"{self.policy.spec()}~{self.offset}/{self.step}"
