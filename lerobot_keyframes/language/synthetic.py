"""Deterministic, model-free language rows for an episode: for tests, the conformance tier and demo checks.

Built from the sample dataset's `ground_truth.json` (phases approach/grasp/carry/release/retreat, grasp
and release frames) when the dataset has one, else from an even split of the episode into those phases
(e.g. for a dataset written by lerobot itself). Every style appears: subtask, plan, memory, task_aug,
motion, an interjection with its speech atom and plan refresh, an acknowledgement speech atom at the first
frame, and VQA rows per camera (or one camera per tick, rotating) in all five answer shapes. Every
timestamp is copied from the episode's parquet timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .annotations import EpisodeAnnotations
from .schema import EMITTED_AT_TOLERANCE_S, VQA_QUESTION_TYPES, LanguageRow, speech_atom

GROUND_TRUTH_FILE = "ground_truth.json"
PHASES = ("approach", "grasp", "carry", "release", "retreat")
MIN_GAP_S = 2 * EMITTED_AT_TOLERANCE_S + 1e-3


def _phrases(obj: str, target: str) -> dict[str, tuple[str, str]]:
    """phase -> (subtask text, past-tense memory line)."""
    return {
        "approach": (f"move to the {obj}", f"I moved to the {obj}."),
        "grasp": (f"grasp the {obj}", f"I grasped the {obj}."),
        "carry": (f"carry the {obj} to the {target}", f"I carried the {obj} to the {target}."),
        "release": (f"release the {obj} on the {target}", f"I released the {obj} on the {target}."),
        "retreat": ("move the arm back", "I moved the arm back."),
    }


def _even_phases(length: int) -> dict[str, tuple[int, int]]:
    bounds = np.linspace(0, length, len(PHASES) + 1).round().astype(int)
    return {name: (int(bounds[i]), int(bounds[i + 1])) for i, name in enumerate(PHASES)}


def _plan_text(steps: Sequence[str]) -> str:
    return "\n".join(f"{k}. {s}" for k, s in enumerate(steps, 1))


def _vqa_answer(qtype: str, obj: str, target: str, size: tuple[int, int], k: int) -> dict[str, Any]:
    w, h = size
    x, y = round(w * (0.3 + 0.05 * (k % 5)), 1), round(h * (0.4 + 0.04 * (k % 5)), 1)
    if qtype == "bbox":
        return {"coords": "pixel", "image_size": [w, h], "detections": [
            {"label": obj, "bbox_format": "xyxy", "bbox": [x - 10.0, y - 8.0, x + 10.0, y + 8.0]}]}
    if qtype == "keypoint":
        return {"coords": "pixel", "image_size": [w, h], "label": obj, "point_format": "xy", "point": [x, y]}
    if qtype == "count":
        return {"label": obj, "count": 1}
    if qtype == "attribute":
        color = obj.split()[0] if " " in obj else "unknown"
        return {"label": obj, "attribute": "color", "value": color}
    return {"subject": obj, "relation": "near", "object": target}


_QUESTIONS = {
    "bbox": "Where is the {obj}?",
    "keypoint": "Point at the {obj}.",
    "count": "How many {obj}s are there?",
    "attribute": "What color is the {obj}?",
    "spatial": "Where is the {obj} relative to the {target}?",
}


def synthetic_episode(
    episode_index: int,
    timestamps: Sequence[float] | np.ndarray,
    *,
    task: str,
    cameras: Sequence[str],
    phases: dict[str, tuple[int, int]] | None = None,
    grasp_frame: int | None = None,
    release_frame: int | None = None,
    object_name: str = "object",
    target_name: str = "target",
    fps: float = 30.0,
    image_sizes: dict[str, tuple[int, int]] | None = None,
    vqa_hz: float = 1.0,
    rotate_cameras: bool = False,
    interjection: bool = True,
) -> EpisodeAnnotations:
    """Valid rows for one episode; `phases` maps phase name to [start_frame, end_frame)."""
    ts = np.asarray(timestamps, dtype=np.float32)
    n = len(ts)
    if n == 0:
        return EpisodeAnnotations(episode_index)

    def t(frame: int) -> float:
        return float(ts[min(max(frame, 0), n - 1)])

    spans = _spans(ts, phases or _even_phases(n))
    persistent, events = _span_rows(spans, t, _phrases(object_name, target_name), object_name, interjection)
    for text in (task, f"Please {task}.", f"Could you {task}?"):
        persistent.append(LanguageRow("user", text, "task_aug", t(0)))
    events.append(speech_atom(f"OK, I will {task}.", t(0)))
    persistent += _motion_rows(ts, t, object_name, grasp_frame, release_frame)
    step = max(1, int(round(fps / vqa_hz)))
    events += _vqa_rows(range(0, n, step), t, cameras, image_sizes or {}, object_name, target_name, rotate_cameras)
    return EpisodeAnnotations(episode_index, tuple(persistent), tuple(events))


def _spans(ts: np.ndarray, phases: dict[str, tuple[int, int]]) -> list[tuple[int, str]]:
    """(start frame, phase), one per distinct start inside the episode, the first from frame 0.

    lerobot's emitted_at matches persistent rows within 0.1 s of a frame: rows of one style stay more than
    0.2 s apart so no frame sees two (a phase shorter than that merges into the previous span).
    """
    n = len(ts)
    spans: list[tuple[int, str]] = []
    for phase in PHASES:
        if phase in phases:
            start = max(0, int(phases[phase][0]))
            if start < n and start not in {s for s, _ in spans}:
                spans.append((start, phase))
    spans.sort()
    if not spans:
        spans = [(0, PHASES[0])]
    spans[0] = (0, spans[0][1])  # the first subtask is active from the first frame
    kept = [spans[0]]
    for start, phase in spans[1:]:
        if float(ts[start]) - float(ts[kept[-1][0]]) > MIN_GAP_S:
            kept.append((start, phase))
    return kept


def _span_rows(spans: Sequence[tuple[int, str]], t: Callable[[int], float], phrases: dict[str, tuple[str, str]],
               object_name: str, interjection: bool) -> tuple[list[LanguageRow], list[LanguageRow]]:
    """Subtask, plan and memory rows at every span start; an interjection (with speech and a replan) mid-way."""
    persistent: list[LanguageRow] = []
    events: list[LanguageRow] = []
    steps = [phrases[p][0] for _, p in spans]
    inter_k = len(spans) // 2 if interjection and len(spans) > 2 else None
    for k, (frame, phase) in enumerate(spans):
        persistent.append(LanguageRow("assistant", phrases[phase][0], "subtask", t(frame)))
        remaining = steps[k:]
        if k == inter_k:
            remaining = [f"{remaining[0]} carefully", *remaining[1:]]
        persistent.append(LanguageRow("assistant", _plan_text(remaining), "plan", t(frame)))
        if k > 0:
            memory = " ".join(phrases[p][1] for _, p in spans[:k])
            persistent.append(LanguageRow("assistant", memory, "memory", t(frame)))
        if k == inter_k:
            events.append(LanguageRow("user", f"Please be careful with the {object_name}.", "interjection", t(frame)))
            events.append(speech_atom(f"Sure, I will {steps[k]} carefully.", t(frame)))
    return persistent, events


def _motion_rows(ts: np.ndarray, t: Callable[[int], float], object_name: str, grasp_frame: int | None,
                 release_frame: int | None) -> list[LanguageRow]:
    """Motion at the start, the grasp and the release (each more than MIN_GAP_S after the one before)."""
    n = len(ts)
    motion_frames = {0: f"move the gripper toward the {object_name}"}
    for frame, text in ((grasp_frame, "close the gripper"), (release_frame, "open the gripper")):
        if frame is not None and 0 < frame < n and float(ts[frame]) - t(max(motion_frames)) > MIN_GAP_S:
            motion_frames[frame] = text
    return [LanguageRow("assistant", text, "motion", t(frame)) for frame, text in sorted(motion_frames.items())]


def _vqa_rows(frames: Iterable[int], t: Callable[[int], float], cameras: Sequence[str],
              image_sizes: dict[str, tuple[int, int]], object_name: str, target_name: str,
              rotate_cameras: bool) -> list[LanguageRow]:
    """A question and its answer per (frame, camera), cycling through every shape, even in short episodes."""
    events: list[LanguageRow] = []
    kinds = 0
    for k, frame in enumerate(frames):
        cams = [cameras[k % len(cameras)]] if rotate_cameras and cameras else list(cameras)
        for cam in cams:
            qtype = VQA_QUESTION_TYPES[kinds % len(VQA_QUESTION_TYPES)]
            kinds += 1
            size = image_sizes.get(cam) or (320, 240)
            question = _QUESTIONS[qtype].format(obj=object_name, target=target_name)
            answer = json.dumps(_vqa_answer(qtype, object_name, target_name, size, k), sort_keys=True)
            events.append(LanguageRow("user", question, "vqa", t(frame), camera=cam, question_type=qtype))
            events.append(LanguageRow("assistant", answer, "vqa", t(frame), camera=cam, question_type=qtype))
    return events


def synthetic_annotations(
    root: str | Path,
    *,
    episodes: Iterable[int] | None = None,
    vqa_hz: float = 1.0,
    rotate_cameras: bool = False,
    interjection: bool = True,
    image_cameras: bool = False,
) -> list[EpisodeAnnotations]:
    """Synthetic rows for the episodes of the dataset at `root` (all by default). VQA goes to the video
    cameras only, as lerobot 0.6.1's validator wants (`image_cameras=True`: image-stored cameras too)."""
    from ..dataset.episodes import build_episode_rows
    from ..dataset.layout import DatasetLayout
    from ..dataset.records import Episode

    layout = DatasetLayout.open(root)
    truth_path = layout.root / GROUND_TRUTH_FILE
    truth: dict[int, dict[str, Any]] = {}
    if truth_path.is_file():
        truth = {e["episode_index"]: e for e in json.loads(truth_path.read_text())["episodes"]}
    sizes = {c.key: (c.width or 320, c.height or 240) for c in layout.cameras if not c.is_depth}
    out = []
    for episode in (Episode.from_row(row) for row in build_episode_rows(layout, episodes=episodes)):
        e = episode.episode_index
        gt = truth.get(e)
        phases = grasp = release = None
        obj, target = "object", "target"
        if gt is not None:
            phases = {name: (p["start_frame"], p["end_frame"]) for name, p in gt["phases"].items()}
            grasp, release = gt.get("grasp_frame"), gt.get("release_frame")
            if "object" in gt:
                obj = f"{gt['object']['color']} {gt['object']['shape']}"
            if "target" in gt:
                target = f"{gt['target']['color']} {gt['target']['kind']}"
        out.append(
            synthetic_episode(
                e, episode.timestamps, task=episode.task or "do the task",
                cameras=[k for k in episode.camera_keys if image_cameras or k in layout.video_keys],
                phases=phases, grasp_frame=grasp, release_frame=release, object_name=obj, target_name=target,
                fps=float(layout.fps), image_sizes=sizes, vqa_hz=vqa_hz, rotate_cameras=rotate_cameras,
                interjection=interjection,
            )
        )
    return out
