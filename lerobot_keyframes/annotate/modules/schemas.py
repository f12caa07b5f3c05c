"""JSON schemas of every model answer. Bounded everywhere (strings, numbers, arrays) so a grammar-constrained
decoder always terminates with valid JSON, even with a random-weight model."""

from __future__ import annotations

from typing import Any

from ...vlm.schema import printable_pattern


def text(max_length: int = 120, min_length: int = 1) -> dict[str, Any]:
    """Printable ASCII, length-bounded by the pattern alone (xgrammar and vLLM reject pattern + maxLength)."""
    return {"type": "string", "pattern": printable_pattern(max_length, min_length)}


def number(lo: float, hi: float) -> dict[str, Any]:
    return {"type": "number", "minimum": lo, "maximum": hi}


def integer(lo: int, hi: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": lo, "maximum": hi}


def obj(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def array(items: dict[str, Any], max_items: int, min_items: int = 1) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


def describe_schema() -> dict[str, Any]:
    return obj(description=text(400))


def segment_schema(window_start: float, window_end: float, max_steps: int) -> dict[str, Any]:
    t = number(round(window_start, 2), round(window_end, 2) + 0.01)
    return obj(subtasks=array(obj(text=text(80), start=t, end=t), max_items=max_steps))


def task_schema() -> dict[str, Any]:
    return obj(task=text(120))


def rephrasings_schema(n: int) -> dict[str, Any]:
    return obj(rephrasings=array(text(120), max_items=n, min_items=1))


TASK_AUG_AXES = ("synonym_paraphrase", "omit_arm", "omit_orientation", "omit_grasp_method", "combined_omissions")


def task_aug_axes_schema(counts: dict[str, int]) -> dict[str, Any]:
    """lerobot-annotate's 5-axis variants: one list per axis, at most its count; an axis whose element the
    task lacks may stay empty (a paraphrase always exists, so synonym_paraphrase has one when asked)."""
    return obj(**{axis: array(text(120), max_items=max(0, counts[axis]),
                              min_items=1 if axis == "synonym_paraphrase" and counts[axis] > 0 else 0)
                  for axis in TASK_AUG_AXES})


def relabel_schema() -> dict[str, Any]:
    return obj(label=text(80))


def memory_schema() -> dict[str, Any]:
    return obj(memory=text(200))


def speech_schema() -> dict[str, Any]:
    return obj(speech=text(160))


def interjection_schema(max_steps: int) -> dict[str, Any]:
    return obj(interjection=text(160), reply=text(160), plan=array(text(80), max_items=max_steps))


def vqa_answer_schema(question_type: str, x_max: float, y_max: float) -> dict[str, Any]:
    """lerobot's five answer shapes; coordinates bounded by the convention's range."""
    # one bound for both axes keeps the grammar simple; answers are clamped per axis afterwards
    coord = number(0, max(x_max, y_max))
    if question_type == "bbox":
        det = obj(label=text(40), bbox_format={"type": "string", "enum": ["xyxy"]},
                  bbox=array(coord, max_items=4, min_items=4))
        return obj(detections=array(det, max_items=3))
    if question_type == "keypoint":
        return obj(label=text(40), point_format={"type": "string", "enum": ["xy"]},
                   point=array(coord, max_items=2, min_items=2))
    if question_type == "count":
        return obj(label=text(40), count=integer(0, 50))
    if question_type == "attribute":
        return obj(label=text(40), attribute=text(30), value=text(40))
    if question_type == "spatial":
        relation = {"type": "string", "enum": ["left_of", "right_of", "on", "in", "above", "below", "near"]}
        return obj(subject=text(40), relation=relation, object=text(40))
    raise ValueError(f"unknown question type {question_type!r}")


def vqa_schema(question_type: str, x_max: float, y_max: float) -> dict[str, Any]:
    return obj(question=text(120), answer=vqa_answer_schema(question_type, x_max, y_max))
