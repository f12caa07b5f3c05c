"""LeRobot v3 datasets: layout, path safety, the episode table, Hub sources (videos read by byte range: `remote`).

Names are imported lazily: `dataset.records` loads with numpy only.
"""

# ruff: noqa: F401 - the TYPE_CHECKING imports are re-exports for IDEs and type checkers
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {  # module -> the public names it defines
    ".episodes": "build_episode_rows episode_features episode_records load_episodes read_tasks",
    ".errors": "DatasetFormatError UnsafePathError UnsupportedVersionError",
    ".layout": "CameraFeature DatasetLayout",
    ".records": "CameraRef Episode",
    ".remote": "VIDEO_ACCESS RemoteStats VideoAccess remote_stats",
    ".source": "ResolvedSource resolve_source",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .episodes import build_episode_rows, episode_features, episode_records, load_episodes, read_tasks
    from .errors import DatasetFormatError, UnsafePathError, UnsupportedVersionError
    from .layout import CameraFeature, DatasetLayout
    from .records import CameraRef, Episode
    from .remote import VIDEO_ACCESS, RemoteStats, VideoAccess, remote_stats
    from .source import ResolvedSource, resolve_source
