"""The quality checks' settings (`--quality.*` of `annotate`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QualityConfig:
    """Episode quality checks before annotation (lerobot_keyframes/quality): cameras, length, gripper."""

    enabled: bool = True  # check every episode before the first model call; findings go to the summary and provenance
    skip_bad_episodes: bool = False  # do not annotate episodes with a finding (they are reported as skipped)
    frames_per_camera: int = 8  # frames decoded per camera and episode for the black / frozen checks
    black_max_mean: float = 12.0  # a camera whose sampled frames all have a mean pixel value below this is black
    frozen_max_diff: float = 0.5  # ... whose successive sampled frames mostly (median) differ by at most this mean value is frozen
    short_fraction: float = 0.35  # an episode shorter than this x the median length of its neighbours is short
    neighbours: int = 10  # episodes on each side that the length is compared with
