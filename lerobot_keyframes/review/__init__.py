"""Review what was annotated: a static HTML site per dataset and optional PNG timelines per episode.

`ReviewConfig` is light; the site builder (numpy, pyarrow, PIL) loads on first use so `lerobot-keyframes
--help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ReviewConfig

if TYPE_CHECKING:
    from .site import build_review, episode_view, trace_shape, vqa_shapes

__all__ = ["ReviewConfig", "build_review", "episode_view", "trace_shape", "vqa_shapes"]


def __getattr__(name: str) -> Any:
    if name in ("build_review", "episode_view", "trace_shape", "vqa_shapes"):
        from . import site

        return getattr(site, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
