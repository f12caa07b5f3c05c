"""lerobot's language columns: schema, validator, a safe writer, and model-free synthetic rows.

Layout: `rows` (the typed row record, style rules, speech atoms; no pyarrow), `schema` (Arrow types and
features), `annotations` (`EpisodeAnnotations`), the validator
(`validator` runs `row_checks`, `episode_checks`, `vqa_checks` into a `report`; `stored` reads a dataset's
rows), the writer (`writer` over `shards`, `info`, `new_root`, `journal`, `safety`) and `synthetic`.

Names are imported lazily: `language.vocabulary` (the option sets) loads without pyarrow.
"""

# ruff: noqa: F401 - the TYPE_CHECKING imports are re-exports for IDEs and type checkers
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {  # module -> the public names it defines
    ".annotations": "EpisodeAnnotations",
    ".info": "update_info",
    ".journal": "PendingWriteError check_no_pending_write pending_write recover_interrupted_write",
    ".provenance": "PROVENANCE_PATH public_provenance read_provenance recorded_source",
    ".report": "Issue LanguageValidationError ValidationReport ValidatorConfig",
    ".safety": "UnsafeWriteError check_in_place_safe",
    ".rows": "EVENT_ROW_FIELDS LANGUAGE_COLUMNS LANGUAGE_EVENTS LANGUAGE_PERSISTENT LanguageRow "
           "LanguageSchemaError PERSISTENT_ROW_FIELDS SAY_TOOL_SCHEMA STYLE_RULES StyleRule column_for_style "
           "say_tool_call speech_atom speech_text",
    ".schema": "event_row_arrow_type events_arrow_type events_feature language_feature_info language_features "
           "persistent_arrow_type persistent_feature persistent_row_arrow_type",
    ".stored": "read_dataset_annotations",
    ".validator": "validate_annotations validate_dataset validate_episode",
    ".vocabulary": "EVENT_STYLES KNOWN_STYLES PERSISTENT_STYLES QuestionType ROLES Role Style VIEW_DEPENDENT_STYLES "
           "VQA_QUESTION_TYPES",
    ".vqa_checks": "check_vqa_answer classify_vqa_answer",
    ".writer": "WriteResult write_language",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .annotations import EpisodeAnnotations
    from .info import update_info
    from .journal import PendingWriteError, check_no_pending_write, pending_write, recover_interrupted_write
    from .provenance import PROVENANCE_PATH, public_provenance, read_provenance, recorded_source
    from .report import Issue, LanguageValidationError, ValidationReport, ValidatorConfig
    from .rows import (
        EVENT_ROW_FIELDS,
        LANGUAGE_COLUMNS,
        LANGUAGE_EVENTS,
        LANGUAGE_PERSISTENT,
        PERSISTENT_ROW_FIELDS,
        SAY_TOOL_SCHEMA,
        STYLE_RULES,
        LanguageRow,
        LanguageSchemaError,
        StyleRule,
        column_for_style,
        say_tool_call,
        speech_atom,
        speech_text,
    )
    from .safety import UnsafeWriteError, check_in_place_safe
    from .schema import (
        event_row_arrow_type,
        events_arrow_type,
        events_feature,
        language_feature_info,
        language_features,
        persistent_arrow_type,
        persistent_feature,
        persistent_row_arrow_type,
    )
    from .stored import read_dataset_annotations
    from .validator import validate_annotations, validate_dataset, validate_episode
    from .vocabulary import (
        EVENT_STYLES,
        KNOWN_STYLES,
        PERSISTENT_STYLES,
        ROLES,
        VIEW_DEPENDENT_STYLES,
        VQA_QUESTION_TYPES,
        QuestionType,
        Role,
        Style,
    )
    from .vqa_checks import check_vqa_answer, classify_vqa_answer
    from .writer import WriteResult, write_language
