"""Annotation: the modules (one interface and registry in `modules/`: plan, interjections, vqa, motion, and your
own), the step that runs them over episodes (`engine`), the run around it (`run/`: paths, preflight, staging and
keys, the writer, publish) and its executors (`executors/`: the `datasets.map` `Annotator`, the local run, Ray,
HF Jobs shards)."""

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
from .context import AnnotationError, EpisodeContext, EpisodeView
from .executors.annotator import Annotator
from .executors.local import run_annotation, write_annotations
from .executors.ray import run_annotation_ray
from .keyframes import AnnotationKeyframes
from .modules import Module, ModuleError, ModuleOutput, Prompt
from .run.result import AnnotateResult

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
    "run_annotation_ray",
    "write_annotations",
]
