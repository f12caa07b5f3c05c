"""LeRobot v3 datasets: layout, path safety, the episode table, Hub sources."""

from __future__ import annotations

from .episodes import build_episode_rows, episode_features, episode_records, load_episodes, read_tasks
from .errors import DatasetFormatError, UnsafePathError, UnsupportedVersionError
from .layout import CameraFeature, DatasetLayout
from .records import CameraRef, Episode
from .source import ResolvedSource, resolve_source

__all__ = [
    "CameraFeature",
    "CameraRef",
    "DatasetFormatError",
    "DatasetLayout",
    "Episode",
    "ResolvedSource",
    "UnsafePathError",
    "UnsupportedVersionError",
    "build_episode_rows",
    "episode_features",
    "episode_records",
    "load_episodes",
    "read_tasks",
    "resolve_source",
]
