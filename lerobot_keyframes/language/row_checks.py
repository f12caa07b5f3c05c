"""Per-row rules: style, column, role, camera, exact frame time, content and tool calls of one language row.

A row failing any of them is reported and left out of the per-episode rules (which would only repeat the
problem in other words).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .report import ValidationReport
from .schema import (
    KNOWN_STYLES,
    ROLES,
    STYLE_RULES,
    VIEW_DEPENDENT_STYLES,
    LanguageColumn,
    LanguageRow,
    StyleRule,
    is_float32_exact,
    speech_text,
)
from .vqa_checks import nonempty_str


@dataclass(frozen=True)
class RowContext:
    """What a row is checked against: its episode's exact frame times and the dataset's cameras."""

    episode_index: int
    frame_times: frozenset[float]
    cameras: frozenset[str] | None = None  # None: not known, not checked
    video_cameras: frozenset[str] | None = None  # set: view-dependent rows must be on one of these


class _RowCheck:
    """Collects the errors of one row, each located at the row; `ok` turns False on the first."""

    def __init__(self, row: LanguageRow, report: ValidationReport, episode_index: int) -> None:
        self.row, self.report, self.episode_index = row, report, episode_index
        self.ok = True

    def error(self, rule: str, message: str) -> None:
        self.report.row_error(rule, message, self.row, self.episode_index)
        self.ok = False


def tool_call_problem(call: object) -> str | None:
    """What is wrong with one tool call (lerobot reads `function.arguments` as an object), or None."""
    if not isinstance(call, Mapping):
        return f"tool call {call!r} is not an object"
    if call.get("type") != "function":
        return "tool call type must be 'function'"
    fn = call.get("function")
    if not isinstance(fn, Mapping) or not nonempty_str(fn.get("name")):
        return "tool call needs function.name"
    if not isinstance(fn.get("arguments"), Mapping):
        return "tool call function.arguments must be an object, not a JSON string"
    return None


def check_row(row: LanguageRow, column: LanguageColumn, ctx: RowContext, report: ValidationReport) -> bool:
    """Every per-row rule; returns False when the row is too broken for the cross-row rules."""
    check = _RowCheck(row, report, ctx.episode_index)
    rule = STYLE_RULES.get(row.style)
    if rule is None:
        check.error("unknown_style", f"style {row.style!r} is not one of {sorted(KNOWN_STYLES)} or None (speech)")
        return False
    if rule.column != column:
        check.error("wrong_column", f"style {row.style!r} belongs in {rule.column}, not {column}")
    _check_role(check, rule)
    _check_camera(check, rule, ctx.cameras)
    _check_time(check, ctx.frame_times)
    _check_content(check)
    for call in row.tool_calls or ():
        problem = tool_call_problem(call)
        if problem:
            check.error("tool_call_malformed", problem)
    if check.ok:
        _check_video_camera(check, ctx.video_cameras)
    return check.ok


def _check_role(check: _RowCheck, rule: StyleRule) -> None:
    role = check.row.role
    if not isinstance(role, str) or role not in ROLES:
        check.error("invalid_role", f"role {role!r} is not one of {sorted(ROLES)}")
    elif role not in rule.roles:
        check.error("invalid_role", f"style {check.row.style!r} needs role {sorted(rule.roles)}, got {role!r}")


def _check_camera(check: _RowCheck, rule: StyleRule, cameras: frozenset[str] | None) -> None:
    row = check.row
    if not rule.camera_required:
        if row.camera is not None:
            check.error("camera_forbidden", f"style {row.style!r} must have camera null, got {row.camera!r}")
    elif not row.camera:
        check.error("camera_required", f"style {row.style!r} needs a camera key")
    elif cameras is not None and row.camera not in cameras:
        check.error("unknown_camera", f"camera {row.camera!r} is not a camera of the dataset {sorted(cameras)}")


def _check_time(check: _RowCheck, frame_times: frozenset[float]) -> None:
    ts = check.row.timestamp
    if not isinstance(ts, float) or not is_float32_exact(ts):
        check.error("timestamp_not_float32",
                    f"timestamp {ts!r} is not a float32 value; copy it from the parquet 'timestamp' column")
    elif ts not in frame_times:
        check.error("timestamp_not_frame",
                    f"timestamp {ts!r} is not bit-equal to any frame timestamp of the episode; "
                    "copy times from the parquet, never recompute them")


def _check_content(check: _RowCheck) -> None:
    row = check.row
    if row.style is not None:
        if not isinstance(row.content, str) or not row.content.strip():
            check.error("empty_content", f"{row.style} row has empty content")
        return
    text = speech_text(row)
    if text is None:
        check.error("speech_malformed",
                    "a style-null row must be a speech atom: role assistant, content null, camera null, "
                    "exactly one tool call {type: function, function: {name: say, arguments: {text: str}}}")
    elif not text.strip():
        check.error("empty_content", "speech atom says nothing (empty text)")


def _check_video_camera(check: _RowCheck, video_cameras: frozenset[str] | None) -> None:
    row = check.row
    if video_cameras is None or not row.camera or row.style not in VIEW_DEPENDENT_STYLES:
        return
    if row.camera not in video_cameras:
        check.error("vqa_image_camera",
                    f"{row.style} row on camera {row.camera!r}, which is stored as images: lerobot 0.6.1's "
                    f"validator accepts view-dependent rows only on the dataset's video keys "
                    f"{sorted(video_cameras)} (allow it with ValidatorConfig(vqa_on_image_cameras=True))")
