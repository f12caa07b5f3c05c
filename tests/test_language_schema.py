"""The language column types, features and helpers match lerobot 0.6.x exactly."""

from __future__ import annotations

import dataclasses
import json

import datasets
import numpy as np
import pyarrow as pa
import pytest

from lerobot_keyframes.language import schema
from lerobot_keyframes.language.schema import (
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    LanguageRow,
    LanguageSchemaError,
    column_for_style,
    decode_stored_rows,
    rows_to_struct_array,
    speech_atom,
    speech_text,
)


def test_persistent_arrow_type_fields_in_lerobot_order():
    t = schema.persistent_row_arrow_type()
    assert [f.name for f in t] == ["role", "content", "style", "timestamp", "camera", "tool_calls"]
    assert t.field("timestamp").type == pa.float32()
    assert not t.field("role").nullable and not t.field("timestamp").nullable
    assert t.field("content").nullable and t.field("camera").nullable
    assert t.field("tool_calls").type == pa.list_(pa.json_())
    assert schema.persistent_arrow_type() == pa.list_(t)


def test_event_arrow_type_has_no_timestamp():
    t = schema.event_row_arrow_type()
    assert [f.name for f in t] == ["role", "content", "style", "camera", "tool_calls"]
    assert schema.events_arrow_type() == pa.list_(t)


def test_datasets_features():
    feats = datasets.Features(schema.language_features())
    persistent = feats[LANGUAGE_PERSISTENT]
    assert isinstance(persistent, datasets.List)
    assert list(persistent.feature) == ["role", "content", "style", "timestamp", "camera", "tool_calls"]
    assert persistent.feature["timestamp"] == datasets.Value("float32")
    assert persistent.feature["tool_calls"] == datasets.List(datasets.Json())
    assert list(feats[LANGUAGE_EVENTS].feature) == ["role", "content", "style", "camera", "tool_calls"]
    # the datasets features and our Arrow types agree up to nullability
    ours = pa.schema([pa.field(LANGUAGE_PERSISTENT, schema.persistent_arrow_type()),
                      pa.field(LANGUAGE_EVENTS, schema.events_arrow_type())])
    assert datasets.Features.from_arrow_schema(ours) == feats


def test_fallback_without_json_feature(monkeypatch: pytest.MonkeyPatch):
    """datasets/pyarrow without Json: tool calls are JSON strings, as lerobot falls back."""
    monkeypatch.setattr(schema, "has_json_feature", lambda: False)
    assert schema.persistent_row_arrow_type().field("tool_calls").type == pa.list_(pa.string())
    assert schema.persistent_row_feature()["tool_calls"] == datasets.List(datasets.Value("string"))
    arr = rows_to_struct_array([speech_atom("hi", 0.0)], LANGUAGE_PERSISTENT)
    assert decode_stored_rows(arr.to_pylist())[0].tool_calls[0]["function"]["arguments"] == {"text": "hi"}


def test_info_declaration_and_say_tool():
    assert schema.language_feature_info() == {
        LANGUAGE_PERSISTENT: {"dtype": "language", "shape": [1], "names": None},
        LANGUAGE_EVENTS: {"dtype": "language", "shape": [1], "names": None},
    }
    say = schema.SAY_TOOL_SCHEMA
    assert say["type"] == "function" and say["function"]["name"] == "say"
    params = say["function"]["parameters"]
    assert params["required"] == ["text"] and params["properties"]["text"]["type"] == "string"
    assert schema.is_say_tool(say)
    assert not schema.is_say_tool({"type": "function", "function": {"name": "say", "parameters": {}}})


def test_style_routing_and_rules():
    for style in ("subtask", "plan", "memory", "motion", "task_aug"):
        assert column_for_style(style) == LANGUAGE_PERSISTENT
    for style in ("interjection", "vqa", "trace", None):
        assert column_for_style(style) == LANGUAGE_EVENTS
    with pytest.raises(LanguageSchemaError, match="unknown language style 'caption'"):
        column_for_style("caption")
    assert schema.STYLE_RULES["vqa"].camera_required and schema.STYLE_RULES["trace"].camera_required
    assert not schema.STYLE_RULES["motion"].camera_required
    assert schema.STYLE_RULES["task_aug"].roles == {"user"}
    assert schema.STYLE_RULES["interjection"].roles == {"user"}


def test_speech_atom_shape():
    row = speech_atom("On my way.", np.float32(0.5))
    assert isinstance(row.timestamp, float) and row.timestamp == 0.5
    assert row.to_event() == {
        "role": "assistant", "content": None, "style": None, "camera": None,
        "tool_calls": [{"type": "function", "function": {"name": "say", "arguments": {"text": "On my way."}}}],
    }
    assert speech_text(row) == "On my way."
    assert speech_text(row.to_event()) == "On my way."
    bad = LanguageRow("assistant", None, None, 0.0, tool_calls=(
        {"type": "function", "function": {"name": "say", "arguments": json.dumps({"text": "x"})}},))
    assert speech_text(bad) is None  # arguments must be an object, not a JSON string


def test_row_roundtrip_through_arrow():
    rows = [
        LanguageRow("assistant", "grasp the cube", "subtask", float(np.float32(0.1))),
        speech_atom("hello", 0.0),
    ]
    arr = rows_to_struct_array(rows, LANGUAGE_PERSISTENT)
    assert arr.type == schema.persistent_row_arrow_type()
    back = decode_stored_rows(arr.to_pylist())
    assert back == rows
    events = rows_to_struct_array(rows, LANGUAGE_EVENTS)
    assert "timestamp" not in events.type.names
    assert decode_stored_rows(events.to_pylist(), timestamp=0.25)[0].timestamp == 0.25


def test_row_is_frozen_and_copies_tool_calls():
    calls = [{"type": "function", "function": {"name": "say", "arguments": {"text": "a"}}}]
    row = LanguageRow("assistant", None, None, 0.0, tool_calls=calls)
    calls[0]["function"]["arguments"]["text"] = "changed"
    assert speech_text(row) == "a"
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'content'"):
        row.content = "x"  # type: ignore[misc]
    assert LanguageRow.from_dict(row.to_dict()) == row
