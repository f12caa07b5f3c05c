"""lerobot's language rows as typed records: the style rules, the `say` tool and speech atoms, `LanguageRow`.

What a row is, without Arrow: annotation modules, staging, the validator, the writer and review all pass
`LanguageRow`s; `schema` (pyarrow) turns them into the stored columns and back. Light on purpose (no
pyarrow), so modules and configs load without it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .vocabulary import (
    KNOWN_STYLES,
    ROLES,
    LanguageColumn,
    QuestionType,
    Role,
    Style,
)

LANGUAGE_PERSISTENT = "language_persistent"
LANGUAGE_EVENTS = "language_events"
LANGUAGE_COLUMNS = (LANGUAGE_PERSISTENT, LANGUAGE_EVENTS)
PERSISTENT_ROW_FIELDS = ("role", "content", "style", "timestamp", "camera", "tool_calls")
EVENT_ROW_FIELDS = ("role", "content", "style", "camera", "tool_calls")


SPEECH_STYLE = None  # speech atoms have no style: `content` null, one `say` tool call
# lerobot's `emitted_at` matches persistent rows within this window of the frame time.
EMITTED_AT_TOLERANCE_S = 0.1

SAY_TOOL_NAME = "say"
SAY_TOOL_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": SAY_TOOL_NAME,
        "description": "Say a short sentence out loud to the user (text to speech).",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "The exact words to say."}},
            "required": ["text"],
        },
    },
}


class LanguageSchemaError(ValueError):
    """A language row breaks a rule of lerobot's schema; the message names episode, style and time."""


@dataclass(frozen=True)
class StyleRule:
    """Where rows of one style go, which roles they may have, and whether they name a camera."""

    style: Style | None
    column: LanguageColumn
    roles: frozenset[str]
    camera_required: bool
    description: str


STYLE_RULES: dict[Style | None, StyleRule] = {
    "subtask": StyleRule("subtask", LANGUAGE_PERSISTENT, frozenset({"assistant"}), False,
                         "active subtask, one row per span start; spans cover the episode"),
    "plan": StyleRule("plan", LANGUAGE_PERSISTENT, frozenset({"assistant"}), False,
                      "numbered remaining subtasks, at span starts and interjection times"),
    "memory": StyleRule("memory", LANGUAGE_PERSISTENT, frozenset({"assistant"}), False,
                        "first-person past-tense summary, at span starts after the first"),
    "task_aug": StyleRule("task_aug", LANGUAGE_PERSISTENT, frozenset({"user"}), False,
                          "task rephrasings at the first frame"),
    "motion": StyleRule("motion", LANGUAGE_PERSISTENT, frozenset({"assistant"}), False,
                        "robot-frame motion description (camera-agnostic)"),
    "interjection": StyleRule("interjection", LANGUAGE_EVENTS, frozenset({"user"}), False,
                              "a user cue on a frame"),
    "vqa": StyleRule("vqa", LANGUAGE_EVENTS, frozenset({"user", "assistant"}), True,
                     "question (user) and JSON answer (assistant) about one camera's frame"),
    "trace": StyleRule("trace", LANGUAGE_EVENTS, ROLES, True, "pixel trajectory in one camera"),
    None: StyleRule(None, LANGUAGE_EVENTS, frozenset({"assistant"}), False,
                    "speech atom: content null, one `say` tool call"),
}


def column_for_style(style: str | None) -> LanguageColumn:
    """The column rows of `style` belong to (`None` is the speech atom, an event)."""
    rule = STYLE_RULES.get(style)
    if rule is None:
        raise LanguageSchemaError(f"unknown language style {style!r}; known: {sorted(KNOWN_STYLES)} or None (speech)")
    return rule.column


# -- the say tool and speech atoms -------------------------------------------------------------------
def say_tool_call(text: str) -> dict[str, Any]:
    """One `say` call; `arguments` is an object (lerobot reads `arguments["text"]`), not a JSON string."""
    return {"type": "function", "function": {"name": SAY_TOOL_NAME, "arguments": {"text": text}}}


def speech_atom(text: str, timestamp: float) -> LanguageRow:
    """The speech event: role assistant, style and content null, one `say` tool call."""
    return LanguageRow(role="assistant", content=None, style=None, timestamp=timestamp,
                       tool_calls=(say_tool_call(text),))


def speech_text(row: LanguageRow | Mapping[str, Any]) -> str | None:
    """The text of a speech atom's `say` call, or None when the row is not a well-formed speech atom."""
    get = row.get if isinstance(row, Mapping) else lambda k: getattr(row, k)
    if get("style") is not None or get("role") != "assistant" or get("content") is not None:
        return None
    calls = get("tool_calls") or ()
    if len(calls) != 1 or not isinstance(calls[0], Mapping) or calls[0].get("type") != "function":
        return None
    fn = calls[0].get("function")
    if not isinstance(fn, Mapping) or fn.get("name") != SAY_TOOL_NAME:
        return None
    args = fn.get("arguments")
    if not isinstance(args, Mapping) or not isinstance(args.get("text"), str):
        return None
    return args["text"]


def is_say_tool(tool: object) -> bool:
    """True for a tool schema named `say` with one required string parameter `text`."""
    if not isinstance(tool, Mapping) or tool.get("type") != "function":
        return False
    fn = tool.get("function")
    if not isinstance(fn, Mapping) or fn.get("name") != SAY_TOOL_NAME:
        return False
    params = fn.get("parameters") or {}
    text = (params.get("properties") or {}).get("text") or {}
    return text.get("type") == "string" and "text" in (params.get("required") or [])


# -- rows ---------------------------------------------------------------------------------------------
def is_float32_exact(value: float) -> bool:
    """True when `value` is exactly representable as float32 (a value copied from a parquet timestamp)."""
    return math.isfinite(value) and float(np.float32(value)) == value


def _freeze_json(value: Any) -> Any:
    """Deep-copy a JSON value so a frozen row cannot be mutated through a shared dict."""
    return json.loads(json.dumps(value)) if value is not None else None


@dataclass(frozen=True)
class LanguageRow:
    """One language row plus the exact (float32-valued) episode time it belongs to.

    Persistent rows keep `timestamp` in the parquet; event rows lose it and are stored on the frame whose
    parquet timestamp equals it bit for bit, so copy times from the parquet, never recompute them.
    `question_type` (VQA only) is checked by the validator against the answer's shape; it is not stored.
    """

    role: Role
    content: str | None
    style: Style | None
    timestamp: float
    camera: str | None = None
    tool_calls: tuple[dict[str, Any], ...] | None = None
    question_type: QuestionType | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        ts = self.timestamp
        if isinstance(ts, (int, np.floating, np.integer)) and not isinstance(ts, bool):
            object.__setattr__(self, "timestamp", float(ts))
        if self.tool_calls is not None and not isinstance(self.tool_calls, tuple):
            object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.tool_calls is not None:
            object.__setattr__(self, "tool_calls", tuple(_freeze_json(c) for c in self.tool_calls))

    @property
    def column(self) -> LanguageColumn:
        return column_for_style(self.style)

    @property
    def is_speech(self) -> bool:
        return speech_text(self) is not None

    def to_persistent(self) -> dict[str, Any]:
        """The stored persistent struct (field order of `PERSISTENT_ROW_FIELDS`)."""
        return {"role": self.role, "content": self.content, "style": self.style,
                "timestamp": self.timestamp, "camera": self.camera,
                "tool_calls": None if self.tool_calls is None else list(self.tool_calls)}

    def to_event(self) -> dict[str, Any]:
        """The stored event struct (no timestamp: the frame it sits on is its time)."""
        return {"role": self.role, "content": self.content, "style": self.style, "camera": self.camera,
                "tool_calls": None if self.tool_calls is None else list(self.tool_calls)}

    def to_dict(self) -> dict[str, Any]:
        """A staging-style dict (lerobot's staging rows): the stored fields plus `timestamp`."""
        out = self.to_persistent()
        if self.question_type is not None:
            out["question_type"] = self.question_type
        return out

    @classmethod
    def from_dict(cls, row: Mapping[str, Any], *, timestamp: float | None = None) -> LanguageRow:
        """Build from a staging or parquet dict; `timestamp` supplies the frame time of stored events."""
        ts = row.get("timestamp", timestamp) if timestamp is None else timestamp
        if ts is None:
            raise LanguageSchemaError(f"language row without timestamp: {dict(row)!r}")
        calls = row.get("tool_calls")
        if calls is not None:
            calls = tuple(json.loads(c) if isinstance(c, str) else c for c in calls)
        return cls(role=row.get("role"), content=row.get("content"), style=row.get("style"),
                   timestamp=float(ts), camera=row.get("camera"), tool_calls=calls,
                   question_type=row.get("question_type"))

    def with_timestamp(self, timestamp: float) -> LanguageRow:
        return replace(self, timestamp=float(timestamp))


def as_row(row: LanguageRow | Mapping[str, Any]) -> LanguageRow:
    return row if isinstance(row, LanguageRow) else LanguageRow.from_dict(row)


def persistent_sort_key(row: LanguageRow) -> tuple[float, str, str, str, str]:
    """lerobot's order for persistent rows: (timestamp, style, role), then content for determinism."""
    return (row.timestamp, row.style or "", row.role or "", row.camera or "", row.content or "")


def event_sort_key(row: LanguageRow) -> tuple[str, str, str, str]:
    """Order of event rows within one frame: (style, role, camera), then content."""
    return (row.style or "", row.role or "", row.camera or "", row.content or "")
