"""Review what was annotated: a site per dataset (video player, timelines, decisions) and applying decisions.

`ReviewConfig` is light; the site builder (numpy, pyarrow, PIL) loads on first use so `lerobot-keyframes
--help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ReviewConfig

if TYPE_CHECKING:
    from .apply import apply_decisions, load_decisions
    from .site import build_review, episode_view, trace_shape, vqa_shapes

__all__ = ["ReviewConfig", "apply_decisions", "build_review", "episode_view", "load_decisions", "trace_shape",
           "vqa_shapes"]


def __getattr__(name: str) -> Any:
    if name in ("build_review", "episode_view", "trace_shape", "vqa_shapes"):
        from . import site

        return getattr(site, name)
    if name in ("apply_decisions", "load_decisions"):
        from . import apply

        return getattr(apply, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
