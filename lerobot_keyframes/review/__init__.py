"""Review what was annotated: a site per dataset (video player, timelines, decisions) and applying decisions.

`ReviewConfig` is light; the site builder (numpy, pyarrow, PIL) loads on first use so `lerobot-keyframes
--help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports
from .config import ReviewConfig  # noqa: F401 (light: imported eagerly)

_EXPORTS = {
    "ReviewConfig": ".config",
    "build_review": ".site",
    "episode_view": ".site",
    "trace_shape": ".site",
    "vqa_shapes": ".site",
    "apply_decisions": ".apply",
    "load_decisions": ".apply",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .apply import apply_decisions, load_decisions  # noqa: F401
    from .site import build_review, episode_view, trace_shape, vqa_shapes  # noqa: F401
