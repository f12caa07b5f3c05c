"""Review what was annotated: a site per dataset (video player, timelines, decisions) and applying decisions.

`ReviewConfig` is light; the site builder (numpy, pyarrow, PIL) loads on first use so `lerobot-keyframes
--help` stays fast.
"""

# ruff: noqa: F401 - the TYPE_CHECKING imports are re-exports for IDEs and type checkers
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports
from .config import ReviewConfig  # light: imported eagerly

_EXPORTS = {  # module -> the public names it defines
    ".config": "ReviewConfig",
    ".site": "build_review episode_view trace_shape vqa_shapes",
    ".apply": "apply_decisions load_decisions",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .apply import apply_decisions, load_decisions
    from .config import ReviewConfig
    from .site import build_review, episode_view, trace_shape, vqa_shapes
