"""Annotation modules (plan, interjections, vqa, motion), prompts, staging and the resumable pipeline."""

from __future__ import annotations

from .annotator import Annotator
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
from .keyframes import AnnotationKeyframes
from .pipeline import AnnotateResult, run_annotation, write_annotations

__all__ = [
    "AnnotateConfig",
    "AnnotateResult",
    "AnnotationKeyframes",
    "Annotator",
    "ExecutorConfig",
    "InterjectionsConfig",
    "MotionConfig",
    "PlanConfig",
    "QualityConfig",
    "RayConfig",
    "VqaConfig",
    "run_annotation",
    "write_annotations",
]
