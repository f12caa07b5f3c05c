"""What `eval` compares: per-episode subtask spans (and VQA answers) from an annotated dataset or a JSON file.

An annotated dataset root gives its `subtask` rows (persistent: each starts a span at its timestamp) and
its `vqa` event rows, read with the language reader (`language.read_dataset_annotations`).

A JSON file of phase boundaries has this shape (times in seconds from the episode start):

    {"fps": 30,                                  # optional: frame rate, for errors in frames
     "episodes": [
       {"episode_index": 0,
        "duration": 6.2,                         # optional: episode length (s), for label agreement
        "subtasks": [{"text": "reach the cube", "start": 0.0},
                     {"text": "grasp it", "start": 1.53, "end": 2.3}, ...]},
       {"episode_index": 1, "boundaries": [1.2, 2.9, 4.4]},          # times only: no labels
       {"episode_index": 2, "phases": {"approach": {"start": 0.0, "end": 1.5}, ...}}]}

Each episode gives one of `subtasks` (a list of {text, start[, end]}), `boundaries` (start times of every
span after the first) or `phases` (name -> {start, end}: the `ground_truth.json` the sample generator
writes is such a file). A span's start is a boundary unless it is the episode's first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class LabelsError(ValueError):
    """A reference or prediction that cannot be read; the message names the file and the episode."""


@dataclass(frozen=True)
class EpisodeLabels:
    """One episode's spans (start time, label or None) in time order, its duration and its VQA answers."""

    episode_index: int
    spans: tuple[tuple[float, str | None], ...]
    duration: float | None = None
    frame_times: tuple[float, ...] | None = None  # the episode's frame timestamps, when known
    vqa: Mapping[tuple[float, str | None], dict[str, Any]] = field(default_factory=dict)  # (time, camera) -> answer

    @property
    def boundaries(self) -> list[float]:
        """Start times of every span but the first (a span starting at 0 is never a boundary)."""
        return [t for k, (t, _) in enumerate(self.spans) if k > 0 and t > 1e-6]


@dataclass(frozen=True)
class Labels:
    """Every episode of one side of the comparison, with where it came from."""

    source: str
    episodes: Mapping[int, EpisodeLabels]
    fps: float | None = None


def load_labels(path: str | Path) -> Labels:
    """Labels from an annotated dataset root (a folder with meta/info.json) or a JSON file (module doc)."""
    path = Path(path)
    if path.is_dir():
        return _from_dataset(path)
    if path.is_file():
        return _from_json(path)
    raise LabelsError(f"{path}: neither an annotated dataset root nor a JSON file of phase boundaries")


def _from_dataset(root: Path) -> Labels:
    from ..dataset.layout import DatasetLayout
    from ..language import read_dataset_annotations

    if not (root / "meta" / "info.json").is_file():
        raise LabelsError(f"{root}: not a LeRobot dataset root (no meta/info.json)")
    fps = float(DatasetLayout.open(root).fps)
    anns, times = read_dataset_annotations(root)
    episodes = {}
    for e, ann in anns.items():
        subtasks = sorted((float(r.timestamp), r.content) for r in ann.persistent if r.style == "subtask")
        if not subtasks:
            continue  # not annotated
        ts = times.get(e)
        frame_times = tuple(float(t) for t in ts) if ts is not None and len(ts) else None
        duration = frame_times[-1] + 1.0 / fps if frame_times else None
        vqa: dict[tuple[float, str | None], dict[str, Any]] = {}
        for r in ann.events:
            if r.style == "vqa" and r.role == "assistant" and r.content:
                try:
                    answer = json.loads(r.content)
                except ValueError:
                    continue
                if isinstance(answer, dict):
                    vqa[(float(r.timestamp), r.camera)] = answer
        episodes[e] = EpisodeLabels(e, tuple(subtasks), duration, frame_times, vqa)
    return Labels(str(root), episodes, fps)


def _number(value: Any, where: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise LabelsError(f"{where}: expected a number of seconds, got {value!r}") from None
    if not np.isfinite(out) or out < 0:
        raise LabelsError(f"{where}: expected a time >= 0 s, got {value!r}")
    return out


def _from_json(path: Path) -> Labels:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LabelsError(f"{path}: not readable JSON ({exc})") from exc
    items = data.get("episodes") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise LabelsError(f"{path}: expected {{'episodes': [...]}} (see `lerobot-keyframes eval --help`)")
    fps = data.get("fps") if isinstance(data, dict) else None
    episodes = {}
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "episode_index" not in item:
            raise LabelsError(f"{path}: episodes[{k}] needs an 'episode_index'")
        e = int(item["episode_index"])
        where = f"{path}: episode {e}"
        spans: list[tuple[float, str | None]]
        if "subtasks" in item:
            spans = [(_number(s.get("start"), f"{where}, subtasks[{j}].start"), s.get("text"))
                     for j, s in enumerate(item["subtasks"])]
        elif "phases" in item:
            spans = [(_number(p.get("start"), f"{where}, phase {name!r}"), str(name))
                     for name, p in item["phases"].items()]
        elif "boundaries" in item:
            spans = [(0.0, None)] + [(_number(t, f"{where}, boundaries[{j}]"), None)
                                     for j, t in enumerate(item["boundaries"])]
        else:
            raise LabelsError(f"{where}: give 'subtasks', 'boundaries' or 'phases'")
        spans.sort(key=lambda s: s[0])
        duration = item.get("duration")
        episodes[e] = EpisodeLabels(e, tuple(spans), float(duration) if duration is not None else None)
    return Labels(str(path), episodes, float(fps) if fps else None)
