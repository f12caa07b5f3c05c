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


def _index(value: Any, where: str) -> int:
    """An episode index from a JSON value: an integer >= 0 (1.0 counts, 1.5 or "zero" do not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise LabelsError(f"{where}: episode_index must be an integer >= 0, got {value!r}")
    return int(value)


def _items(value: Any, kind: type, where: str, expected: str) -> Any:
    if not isinstance(value, kind):
        raise LabelsError(f"{where}: expected {expected}, got {type(value).__name__} {str(value)[:40]!r}")
    return value


def _spans(item: dict[str, Any], where: str) -> list[tuple[float, str | None]]:
    """The spans of one episode entry, every field's type checked (the error names the field)."""
    if "subtasks" in item:
        out = []
        for j, s in enumerate(_items(item["subtasks"], list, f"{where}, subtasks", "a list of {text, start}")):
            s = _items(s, dict, f"{where}, subtasks[{j}]", "an object {text, start}")
            text = s.get("text")
            if text is not None and not isinstance(text, str):
                raise LabelsError(f"{where}, subtasks[{j}].text: expected a string, got {text!r}")
            out.append((_number(s.get("start"), f"{where}, subtasks[{j}].start"), text))
        return out
    if "phases" in item:
        phases = _items(item["phases"], dict, f"{where}, phases", "an object {name: {start, end}}")
        return [(_number(_items(p, dict, f"{where}, phase {name!r}", "an object {start, end}").get("start"),
                         f"{where}, phase {name!r}.start"), str(name)) for name, p in phases.items()]
    if "boundaries" in item:
        times = _items(item["boundaries"], list, f"{where}, boundaries", "a list of seconds")
        return [(0.0, None)] + [(_number(t, f"{where}, boundaries[{j}]"), None) for j, t in enumerate(times)]
    raise LabelsError(f"{where}: give 'subtasks', 'boundaries' or 'phases'")


def _from_json(path: Path) -> Labels:
    from ..utils.structured import StructuredInputError, read_json_file

    try:  # any size, but no deeper than a reference ever is (a `[[[[...` file is refused, not a RecursionError)
        data = read_json_file(path, max_bytes=None, max_depth=16, max_nodes=None)
    except StructuredInputError as exc:
        raise LabelsError(str(exc)) from None
    except OSError as exc:
        raise LabelsError(f"{path}: not readable ({exc.strerror or exc})") from None
    items = data.get("episodes") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise LabelsError(f"{path}: expected {{'episodes': [...]}} (see `lerobot-keyframes eval --help`)")
    fps = data.get("fps") if isinstance(data, dict) else None
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0):
        raise LabelsError(f"{path}: fps must be a number > 0, got {fps!r}")
    episodes: dict[int, EpisodeLabels] = {}
    first_at: dict[int, int] = {}
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "episode_index" not in item:
            raise LabelsError(f"{path}: episodes[{k}] needs an 'episode_index'")
        e = _index(item["episode_index"], f"{path}: episodes[{k}]")
        if e in first_at:  # never keep one of two and drop the other silently
            raise LabelsError(f"{path}: episode {e} appears twice (episodes[{first_at[e]}] and episodes[{k}]); "
                              "keep one entry per episode")
        first_at[e] = k
        where = f"{path}: episode {e}"
        spans = sorted(_spans(item, where), key=lambda s: s[0])
        if not spans:  # an empty list would score every prediction as perfect
            raise LabelsError(f"{where}: no subtasks or phases; give at least one, or leave the episode out")
        duration = item.get("duration")
        episodes[e] = EpisodeLabels(e, tuple(spans), _number(duration, f"{where}, duration") if duration is not None else None)
    return Labels(str(path), episodes, float(fps) if fps else None)
