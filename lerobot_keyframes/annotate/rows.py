"""Staged language rows: lerobot's row fields plus the exact frame `timestamp` they belong to."""

from __future__ import annotations

from typing import Any


def persistent_row(style: str, content: str, timestamp: float, *, role: str = "assistant") -> dict[str, Any]:
    return {"role": role, "content": content, "style": style, "timestamp": float(timestamp), "camera": None,
            "tool_calls": None}


def event_row(
    style: str | None, content: str | None, timestamp: float, *, role: str, camera: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {"role": role, "content": content, "style": style, "timestamp": float(timestamp), "camera": camera,
            "tool_calls": tool_calls}


def speech_row(text: str, timestamp: float) -> dict[str, Any]:
    """The `say` speech atom: content null, one tool call whose arguments is an object."""
    call = {"type": "function", "function": {"name": "say", "arguments": {"text": text}}}
    return event_row(None, None, timestamp, role="assistant", tool_calls=[call])
