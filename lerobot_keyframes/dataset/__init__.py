"""LeRobot v3 datasets: layout, path safety, the episode table, Hub sources.

Names are imported lazily: `dataset.records` loads with numpy only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {
    "build_episode_rows": ".episodes",
    "episode_features": ".episodes",
    "episode_records": ".episodes",
    "load_episodes": ".episodes",
    "read_tasks": ".episodes",
    "DatasetFormatError": ".errors",
    "UnsafePathError": ".errors",
    "UnsupportedVersionError": ".errors",
    "CameraFeature": ".layout",
    "DatasetLayout": ".layout",
    "CameraRef": ".records",
    "Episode": ".records",
    "ResolvedSource": ".source",
    "resolve_source": ".source",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .episodes import (  # noqa: F401
        build_episode_rows,
        episode_features,
        episode_records,
        load_episodes,
        read_tasks,  # noqa: F401
    )
    from .errors import DatasetFormatError, UnsafePathError, UnsupportedVersionError  # noqa: F401
    from .layout import CameraFeature, DatasetLayout  # noqa: F401
    from .records import CameraRef, Episode  # noqa: F401
    from .source import ResolvedSource, resolve_source  # noqa: F401
