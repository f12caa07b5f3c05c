"""lerobot's two language columns: exact Arrow types, `datasets` features (rows, rules, `say`: `rows`).

Everything here mirrors lerobot 0.6.x (`lerobot.datasets.language`) so that a dataset written by this
package loads in lerobot without conversion. `datasets` and `pyarrow` features are detected at call time:
`datasets.Json` / `pyarrow.json_` when present (datasets >= 4.x, pyarrow >= 19), JSON-encoded strings
otherwise, exactly as lerobot falls back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .rows import (  # noqa: F401 (re-exported: the row records and their rules)
    EMITTED_AT_TOLERANCE_S,
    EVENT_ROW_FIELDS,
    LANGUAGE_COLUMNS,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    PERSISTENT_ROW_FIELDS,
    SAY_TOOL_NAME,
    SAY_TOOL_SCHEMA,
    SPEECH_STYLE,
    STYLE_RULES,
    LanguageRow,
    LanguageSchemaError,
    StyleRule,
    as_row,
    column_for_style,
    event_sort_key,
    is_float32_exact,
    is_say_tool,
    persistent_sort_key,
    say_tool_call,
    speech_atom,
    speech_text,
)
from .vocabulary import (  # noqa: F401 (re-exported: the row schema's words)
    EVENT_STYLES,
    KNOWN_STYLES,
    PERSISTENT_STYLES,
    ROLES,
    VIEW_DEPENDENT_STYLES,
    VQA_QUESTION_TYPES,
    EventStyle,
    LanguageColumn,
    PersistentStyle,
    QuestionType,
    Role,
    Style,
)

if TYPE_CHECKING:
    from datasets.features.features import FeatureType

# -- Arrow types and datasets features ---------------------------------------------------------------
def has_json_feature() -> bool:
    """True when `datasets.Json` exists (then tool calls are stored as Arrow JSON, else JSON strings)."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        return hasattr(pa, "json_")
    return hasattr(datasets, "Json") and hasattr(pa, "json_")


def json_arrow_type() -> pa.DataType:
    """Arrow type of one `tool_calls` item: `arrow.json` extension, or string on older stacks."""
    return pa.json_() if has_json_feature() else pa.string()


def _row_arrow_type(with_timestamp: bool, json_type: pa.DataType) -> pa.StructType:
    fields = [
        pa.field("role", pa.string(), nullable=False),
        pa.field("content", pa.string()),
        pa.field("style", pa.string()),
    ]
    if with_timestamp:
        fields.append(pa.field("timestamp", pa.float32(), nullable=False))
    fields += [pa.field("camera", pa.string()), pa.field("tool_calls", pa.list_(json_type))]
    return pa.struct(fields)


def persistent_row_arrow_type() -> pa.StructType:
    """struct<role not null, content, style, timestamp float32 not null, camera, tool_calls list<json>>."""
    return _row_arrow_type(True, json_arrow_type())


def event_row_arrow_type() -> pa.StructType:
    """struct<role not null, content, style, camera, tool_calls list<json>> (no timestamp)."""
    return _row_arrow_type(False, json_arrow_type())


def persistent_arrow_type() -> pa.ListType:
    return pa.list_(persistent_row_arrow_type())


def events_arrow_type() -> pa.ListType:
    return pa.list_(event_row_arrow_type())


def column_arrow_type(column: str) -> pa.ListType:
    if column == LANGUAGE_PERSISTENT:
        return persistent_arrow_type()
    if column == LANGUAGE_EVENTS:
        return events_arrow_type()
    raise KeyError(column)


def _storage_row_type(with_timestamp: bool) -> pa.StructType:
    """The same struct with JSON items as plain strings: what Python values are built into first."""
    return _row_arrow_type(with_timestamp, pa.string())


def _json_feature() -> FeatureType:
    import datasets

    return datasets.Json() if has_json_feature() else datasets.Value("string")


def _list_feature(inner: FeatureType) -> FeatureType:
    import datasets

    if hasattr(datasets, "List"):
        return datasets.List(inner)
    return datasets.Sequence(inner)  # pragma: no cover - datasets < 4


def _row_feature(with_timestamp: bool) -> dict[str, FeatureType]:
    from datasets import Value

    time = {"timestamp": Value("float32")} if with_timestamp else {}
    return {"role": Value("string"), "content": Value("string"), "style": Value("string"), **time,
            "camera": Value("string"), "tool_calls": _list_feature(_json_feature())}


def persistent_row_feature() -> dict[str, FeatureType]:
    """`{role, content, style, timestamp float32, camera, tool_calls: List(Json())}`."""
    return _row_feature(True)


def event_row_feature() -> dict[str, FeatureType]:
    """`{role, content, style, camera, tool_calls: List(Json())}`."""
    return _row_feature(False)


def persistent_feature() -> FeatureType:
    """`List({role, content, style, timestamp float32, camera, tool_calls: List(Json())})`."""
    return _list_feature(persistent_row_feature())


def events_feature() -> FeatureType:
    """`List({role, content, style, camera, tool_calls: List(Json())})`."""
    return _list_feature(event_row_feature())


def language_features() -> dict[str, FeatureType]:
    """Both columns as `datasets` features, keyed by column name."""
    return {LANGUAGE_PERSISTENT: persistent_feature(), LANGUAGE_EVENTS: events_feature()}


def language_feature_info() -> dict[str, dict[str, Any]]:
    """The `meta/info.json["features"]` entries lerobot requires for both columns."""
    return {col: {"dtype": "language", "shape": [1], "names": None} for col in LANGUAGE_COLUMNS}


# -- building Arrow arrays ---------------------------------------------------------------------------
def _dump_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def rows_to_struct_array(rows: Sequence[LanguageRow], column: str) -> pa.Array:
    """A struct array (one item per row) of `column`'s declared row type."""
    persistent = column == LANGUAGE_PERSISTENT
    items = []
    for r in rows:
        d = r.to_persistent() if persistent else r.to_event()
        if d["tool_calls"] is not None:
            d["tool_calls"] = [_dump_json(c) for c in d["tool_calls"]]
        items.append(d)
    storage = pa.array(items, type=_storage_row_type(persistent))
    target = persistent_row_arrow_type() if persistent else event_row_arrow_type()
    return storage.cast(target) if storage.type != target else storage


def decode_stored_rows(cells: Sequence[Mapping[str, Any] | None] | None, *, timestamp: float | None = None) -> list[LanguageRow]:
    """Stored structs (as `to_pylist()` dicts) back to rows; events take the frame `timestamp`."""
    out = []
    for cell in cells or []:
        if cell is None:
            continue
        out.append(LanguageRow.from_dict(cell, timestamp=timestamp if "timestamp" not in cell else None))
    return out
