"""What a review was made on: the dataset (`dataset_identity`) and each episode's annotations
(`annotations_digest`). The site writes both into its pages, the pages stamp them into `decisions.json`, and
`review-apply` refuses decisions whose dataset or episode annotations are not those of the root it is given.

The dataset identity covers what recording a dataset holds (codebase version, robot, fps, episode, frame and
task counts, the non-language features), not where it lies: a root moved or copied keeps its identity, an
annotated root and a reviewed one made from it share it. The digest of an episode covers its frame times and
every language row (`row_ids` order, `row_record` fields), so any change to its annotations changes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..language.schema import LANGUAGE_COLUMNS
from ..language.validator import EpisodeAnnotations
from .model import row_ids, row_record

_IDENTITY_KEYS = ("codebase_version", "robot_type", "fps", "total_episodes", "total_frames", "total_tasks")


def dataset_identity(info: Mapping[str, Any]) -> str:
    """A short hash of a dataset's `meta/info.json`: what it records, without its language columns."""
    features = info.get("features") if isinstance(info.get("features"), Mapping) else {}
    blob = {k: info.get(k) for k in _IDENTITY_KEYS}
    blob["features"] = {name: [f.get("dtype"), f.get("shape")] for name, f in sorted(features.items())
                        if name not in LANGUAGE_COLUMNS and isinstance(f, Mapping)}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def annotations_digest(ann: EpisodeAnnotations | None, timestamps: np.ndarray) -> str:
    """A short hash of one episode's frame times and language rows (None: an episode without rows)."""
    rows = [[rid, row_record(r)] for rid, r in row_ids(ann)] if ann is not None else []
    h = hashlib.sha256(np.ascontiguousarray(timestamps, dtype=np.float32).tobytes())
    h.update(json.dumps(rows, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]
