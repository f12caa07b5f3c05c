"""Review what was annotated: a static HTML site per dataset and optional PNG timelines per episode."""

from __future__ import annotations

from .config import ReviewConfig
from .site import build_review, episode_view, vqa_shapes

__all__ = ["ReviewConfig", "build_review", "episode_view", "vqa_shapes"]
