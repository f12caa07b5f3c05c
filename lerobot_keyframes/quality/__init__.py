"""Episode quality checks that run before annotation: cameras, frames, length, gripper signal."""

from __future__ import annotations

from .checks import (
    QualityFinding,
    bad_episodes,
    check_episode,
    check_episodes,
    findings_as_dict,
    findings_summary,
)
from .config import QualityConfig

__all__ = [
    "QualityConfig",
    "QualityFinding",
    "bad_episodes",
    "check_episode",
    "check_episodes",
    "findings_as_dict",
    "findings_summary",
]
