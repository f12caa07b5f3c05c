"""Annotation: the modules (one interface and registry in `modules/`: plan, interjections, vqa, motion, and your
own), the step that runs them over episodes (`engine`, `Annotator`), staging and the resumable pipeline."""

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
from .context import AnnotationError, EpisodeContext, EpisodeView
from .keyframes import AnnotationKeyframes
from .modules import Module, ModuleError, ModuleOutput, Prompt
from .pipeline import AnnotateResult, run_annotation, write_annotations

__all__ = [
    "AnnotateConfig",
    "AnnotateResult",
    "AnnotationError",
    "AnnotationKeyframes",
    "Annotator",
    "EpisodeContext",
    "EpisodeView",
    "ExecutorConfig",
    "InterjectionsConfig",
    "Module",
    "ModuleError",
    "ModuleOutput",
    "MotionConfig",
    "PlanConfig",
    "Prompt",
    "QualityConfig",
    "RayConfig",
    "VqaConfig",
    "run_annotation",
    "write_annotations",
]
