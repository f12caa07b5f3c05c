"""`eval`: how well annotated subtasks (and VQA) agree with a reference: boundaries, labels, boxes, points."""

from __future__ import annotations

from .labels import EpisodeLabels, Labels, LabelsError, load_labels
from .metrics import DEFAULT_TOLERANCES, EvalReport, evaluate, match_count, paired_errors

__all__ = [
    "DEFAULT_TOLERANCES",
    "EpisodeLabels",
    "EvalReport",
    "Labels",
    "LabelsError",
    "evaluate",
    "load_labels",
    "match_count",
    "paired_errors",
]
