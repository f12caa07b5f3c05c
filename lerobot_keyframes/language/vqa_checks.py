"""VQA rules: the answer's JSON shape (one of lerobot's five), and per frame one question/answer pair per camera.

A malformed answer poisons a training target; two cameras' VQA on one frame is ambiguous to released
lerobot 0.6.0/0.6.1 (`emitted_at(t, style=vqa)` takes no camera).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .report import ValidationReport, ValidatorConfig
from .schema import VQA_QUESTION_TYPES, LanguageRow, QuestionType

# Keys an answer may carry besides its shape's own: our coordinate convention and the model's image size
# (recorded so users can convert), and lerobot's optional count note.
VQA_EXTRA_KEYS = frozenset({"coords", "image_size", "note"})
VQA_COORDS = frozenset({"pixel", "norm1000", "norm1"})
_SHAPE_KEYS: dict[QuestionType, frozenset[str]] = {
    "bbox": frozenset({"detections"}),
    "keypoint": frozenset({"label", "point_format", "point"}),
    "count": frozenset({"label", "count"}),
    "attribute": frozenset({"label", "attribute", "value"}),
    "spatial": frozenset({"subject", "relation", "object"}),
}


class _UnsortedKeys(ValueError):
    pass


def _pairs_sorted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if keys != sorted(keys):
        raise _UnsortedKeys(keys)
    return dict(pairs)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def nonempty_str(v: object) -> bool:
    return isinstance(v, str) and bool(v.strip())


def classify_vqa_answer(payload: object) -> QuestionType | None:
    """The question type whose shape `payload` has (own keys present, only known extras), or None."""
    if not isinstance(payload, dict):
        return None
    keys = set(payload)
    for qtype, required in _SHAPE_KEYS.items():
        if required <= keys and not (keys - required - VQA_EXTRA_KEYS):
            return qtype
    return None


# -- one checker per shape: the problems of a payload already known to have that shape's keys ----------
def _bbox_problems(p: dict[str, Any]) -> list[str]:
    dets = p["detections"]
    if not isinstance(dets, list):
        return ["'detections' must be a list"]
    problems = []
    for k, det in enumerate(dets):
        if not isinstance(det, dict) or not nonempty_str(det.get("label")):
            problems.append(f"detection {k} needs a non-empty 'label'")
            continue
        if det.get("bbox_format") != "xyxy":
            problems.append(f"detection {k}: bbox_format must be 'xyxy'")
        box = det.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            problems.append(f"detection {k}: bbox must be 4 numbers [x1, y1, x2, y2]")
        elif box[0] > box[2] or box[1] > box[3]:
            problems.append(f"detection {k}: bbox {box} has x1 > x2 or y1 > y2")
    return problems


def _keypoint_problems(p: dict[str, Any]) -> list[str]:
    problems = [] if nonempty_str(p["label"]) else ["'label' must be a non-empty string"]
    if p["point_format"] != "xy":
        problems.append("point_format must be 'xy'")
    pt = p["point"]
    if not (isinstance(pt, list) and len(pt) == 2 and all(_is_number(v) for v in pt)):
        problems.append("point must be 2 numbers [x, y]")
    return problems


def _count_problems(p: dict[str, Any]) -> list[str]:
    problems = [] if nonempty_str(p["label"]) else ["'label' must be a non-empty string"]
    c = p["count"]
    if not (isinstance(c, int) and not isinstance(c, bool) and c >= 0):
        problems.append(f"count must be a non-negative integer, got {c!r}")
    return problems


def _strings_problems(*keys: str) -> Callable[[dict[str, Any]], list[str]]:
    def problems(p: dict[str, Any]) -> list[str]:
        return [f"{key!r} must be a non-empty string" for key in keys if not nonempty_str(p[key])]

    return problems


_SHAPE_PROBLEMS: dict[QuestionType, Callable[[dict[str, Any]], list[str]]] = {
    "bbox": _bbox_problems,
    "keypoint": _keypoint_problems,
    "count": _count_problems,
    "attribute": _strings_problems("label", "attribute", "value"),
    "spatial": _strings_problems("subject", "relation", "object"),
}


def _extra_problems(p: dict[str, Any]) -> list[str]:
    problems = []
    if "coords" in p and p["coords"] not in VQA_COORDS:
        problems.append(f"coords must be one of {sorted(VQA_COORDS)}, got {p['coords']!r}")
    if "image_size" in p:
        size = p["image_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            problems.append(f"image_size must be [width, height] in pixels, got {size!r}")
    return problems


def check_vqa_answer(content: str | None, question_type: QuestionType | None = None
                     ) -> tuple[QuestionType | None, list[str]]:
    """(detected type, problems) for one answer string: JSON object, sorted keys, one of the five shapes."""
    if not isinstance(content, str):
        return None, ["answer content is not a JSON string"]
    try:
        payload = json.loads(content, object_pairs_hook=_pairs_sorted)
    except _UnsortedKeys as exc:
        return None, [f"answer JSON keys are not sorted ({exc.args[0]}); dump it with sort_keys=True"]
    except ValueError as exc:
        return None, [f"answer is not valid JSON ({exc})"]
    qtype = classify_vqa_answer(payload)
    if qtype is None:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        return None, [f"answer {keys} matches none of the shapes {list(VQA_QUESTION_TYPES)}"]
    problems: list[str] = []
    if question_type is not None and question_type != qtype:
        problems.append(f"answer has the {qtype!r} shape but the question asked for {question_type!r}")
    return qtype, problems + _SHAPE_PROBLEMS[qtype](payload) + _extra_problems(payload)


# -- the VQA rows of one frame ----------------------------------------------------------------------
def check_vqa_frame(vqa: Sequence[LanguageRow], ts: float, config: ValidatorConfig, report: ValidationReport,
                    ep: int) -> None:
    """One question and one answer per (frame, camera), one camera per frame if asked, well-shaped answers."""
    where: dict[str, Any] = {"episode_index": ep, "timestamp": ts, "style": "vqa"}
    for (cam, role), n in Counter((r.camera, r.role) for r in vqa).items():
        if n > 1:
            report.error("vqa_duplicate", f"{n} vqa rows with role {role!r} for one (frame, camera)", camera=cam,
                         **where)
    cams = sorted({r.camera for r in vqa if r.camera})
    for cam in cams:
        roles = {r.role for r in vqa if r.camera == cam}
        if roles != {"user", "assistant"}:
            missing = "answer" if "assistant" not in roles else "question"
            report.error("vqa_unpaired", f"vqa {missing} missing for this (frame, camera)", camera=cam, **where)
    if len(cams) > 1:
        msg = (f"VQA from {len(cams)} cameras {cams} on one frame: released lerobot 0.6.0/0.6.1 fail with "
               "'ambiguous' (rotate cameras across ticks for them)")
        (report.error if config.single_camera_vqa_per_frame else report.warning)("vqa_multi_camera", msg, **where)
    questions = {r.camera: r.question_type for r in vqa if r.role == "user" and r.question_type}
    for r in vqa:
        if r.role == "assistant":
            _, problems = check_vqa_answer(r.content, r.question_type or questions.get(r.camera))
            for problem in problems:
                report.error("vqa_answer", problem, camera=r.camera, **where)
