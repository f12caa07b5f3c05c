"""lerobot's language columns: schema, validator, a safe writer, and model-free synthetic rows.

Layout: `schema` (row type, Arrow types, style rules), `annotations` (`EpisodeAnnotations`), the validator
(`validator` runs `row_checks`, `episode_checks`, `vqa_checks` into a `report`; `stored` reads a dataset's
rows), the writer (`writer` over `shards`, `info`, `new_root`, `journal`, `safety`) and `synthetic`.

Names are imported lazily: `language.vocabulary` (the option sets) loads without pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {
    "EpisodeAnnotations": ".annotations",
    "update_info": ".info",
    "Issue": ".report",
    "LanguageValidationError": ".report",
    "ValidationReport": ".report",
    "ValidatorConfig": ".report",
    "UnsafeWriteError": ".safety",
    "check_in_place_safe": ".safety",
    "EVENT_ROW_FIELDS": ".schema",
    "LANGUAGE_COLUMNS": ".schema",
    "LANGUAGE_EVENTS": ".schema",
    "LANGUAGE_PERSISTENT": ".schema",
    "LanguageRow": ".schema",
    "LanguageSchemaError": ".schema",
    "PERSISTENT_ROW_FIELDS": ".schema",
    "SAY_TOOL_SCHEMA": ".schema",
    "STYLE_RULES": ".schema",
    "StyleRule": ".schema",
    "column_for_style": ".schema",
    "event_row_arrow_type": ".schema",
    "events_arrow_type": ".schema",
    "events_feature": ".schema",
    "language_feature_info": ".schema",
    "language_features": ".schema",
    "persistent_arrow_type": ".schema",
    "persistent_feature": ".schema",
    "persistent_row_arrow_type": ".schema",
    "say_tool_call": ".schema",
    "speech_atom": ".schema",
    "speech_text": ".schema",
    "read_dataset_annotations": ".stored",
    "validate_annotations": ".validator",
    "validate_dataset": ".validator",
    "validate_episode": ".validator",
    "EVENT_STYLES": ".vocabulary",
    "KNOWN_STYLES": ".vocabulary",
    "PERSISTENT_STYLES": ".vocabulary",
    "QuestionType": ".vocabulary",
    "ROLES": ".vocabulary",
    "Role": ".vocabulary",
    "Style": ".vocabulary",
    "VIEW_DEPENDENT_STYLES": ".vocabulary",
    "VQA_QUESTION_TYPES": ".vocabulary",
    "check_vqa_answer": ".vqa_checks",
    "classify_vqa_answer": ".vqa_checks",
    "WriteResult": ".writer",
    "write_language": ".writer",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .annotations import EpisodeAnnotations  # noqa: F401
    from .info import update_info  # noqa: F401
    from .report import Issue, LanguageValidationError, ValidationReport, ValidatorConfig  # noqa: F401
    from .safety import UnsafeWriteError, check_in_place_safe  # noqa: F401
    from .schema import (  # noqa: F401  # noqa: F401  # noqa: F401  # noqa: F401  # noqa: F401  # noqa: F401
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
    from .stored import read_dataset_annotations  # noqa: F401
    from .validator import validate_annotations, validate_dataset, validate_episode  # noqa: F401
    from .vocabulary import (  # noqa: F401  # noqa: F401
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
    from .vqa_checks import check_vqa_answer, classify_vqa_answer  # noqa: F401
    from .writer import WriteResult, write_language  # noqa: F401
