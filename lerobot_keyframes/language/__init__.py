"""lerobot's language columns: schema, validator, a safe writer, and model-free synthetic rows.

Layout: `schema` (row type, Arrow types, style rules), `annotations` (`EpisodeAnnotations`), the validator
(`validator` runs `row_checks`, `episode_checks`, `vqa_checks` into a `report`; `stored` reads a dataset's
rows), the writer (`writer` over `shards`, `info`, `new_root`, `journal`, `safety`) and `synthetic`.
"""

from __future__ import annotations

from .annotations import EpisodeAnnotations
from .info import update_info
from .report import Issue, LanguageValidationError, ValidationReport, ValidatorConfig
from .safety import UnsafeWriteError, check_in_place_safe
from .schema import (
    EVENT_ROW_FIELDS,
    EVENT_STYLES,
    KNOWN_STYLES,
    LANGUAGE_COLUMNS,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    PERSISTENT_ROW_FIELDS,
    PERSISTENT_STYLES,
    ROLES,
    SAY_TOOL_SCHEMA,
    STYLE_RULES,
    VIEW_DEPENDENT_STYLES,
    VQA_QUESTION_TYPES,
    LanguageRow,
    LanguageSchemaError,
    QuestionType,
    Role,
    Style,
    StyleRule,
    column_for_style,
    event_row_arrow_type,
    events_arrow_type,
    events_feature,
    language_feature_info,
    language_features,
    persistent_arrow_type,
    persistent_feature,
    persistent_row_arrow_type,
    say_tool_call,
    speech_atom,
    speech_text,
)
from .stored import read_dataset_annotations
from .validator import validate_annotations, validate_dataset, validate_episode
from .vqa_checks import check_vqa_answer, classify_vqa_answer
from .writer import WriteResult, write_language

__all__ = [
    "EVENT_ROW_FIELDS",
    "EVENT_STYLES",
    "KNOWN_STYLES",
    "LANGUAGE_COLUMNS",
    "LANGUAGE_EVENTS",
    "LANGUAGE_PERSISTENT",
    "PERSISTENT_ROW_FIELDS",
    "PERSISTENT_STYLES",
    "ROLES",
    "SAY_TOOL_SCHEMA",
    "STYLE_RULES",
    "VIEW_DEPENDENT_STYLES",
    "VQA_QUESTION_TYPES",
    "EpisodeAnnotations",
    "Issue",
    "LanguageRow",
    "LanguageSchemaError",
    "LanguageValidationError",
    "QuestionType",
    "Role",
    "Style",
    "StyleRule",
    "UnsafeWriteError",
    "ValidationReport",
    "ValidatorConfig",
    "WriteResult",
    "check_in_place_safe",
    "check_vqa_answer",
    "classify_vqa_answer",
    "column_for_style",
    "event_row_arrow_type",
    "events_arrow_type",
    "events_feature",
    "language_feature_info",
    "language_features",
    "persistent_arrow_type",
    "persistent_feature",
    "persistent_row_arrow_type",
    "read_dataset_annotations",
    "say_tool_call",
    "speech_atom",
    "speech_text",
    "update_info",
    "validate_annotations",
    "validate_dataset",
    "validate_episode",
    "write_language",
]
