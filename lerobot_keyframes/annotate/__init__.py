"""Annotation modules (plan, interjections, vqa, motion), prompts, staging and the resumable pipeline."""

from __future__ import annotations

from .config import (
    AnnotateConfig,
    ExecutorConfig,
    InterjectionsConfig,
    MotionConfig,
    PlanConfig,
    QualityConfig,
    RayConfig,
    VqaConfig,
)
from .pipeline import AnnotateResult, run_annotation

__all__ = [
    "AnnotateConfig",
    "AnnotateResult",
    "ExecutorConfig",
    "InterjectionsConfig",
    "MotionConfig",
    "PlanConfig",
    "QualityConfig",
    "RayConfig",
    "VqaConfig",
    "run_annotation",
]
