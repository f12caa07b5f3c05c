"""The words of lerobot's language columns as types: columns, styles, roles, VQA question types.

Light on purpose (no pyarrow): configs and the CLI import these option sets at start-up.
"""

from __future__ import annotations

from typing import Literal, get_args

LanguageColumn = Literal["language_persistent", "language_events"]
# The option sets of a row, as types (the frozensets below are read from them); rows read from files may hold
# anything, which the validator reports.
PersistentStyle = Literal["subtask", "plan", "memory", "motion", "task_aug"]
EventStyle = Literal["interjection", "vqa", "trace"]
Style = Literal[PersistentStyle, EventStyle]
Role = Literal["user", "assistant", "system", "tool"]  # lerobot's chat roles (`lerobot.configs.recipe.MessageRole`)
QuestionType = Literal["bbox", "keypoint", "count", "attribute", "spatial"]

PERSISTENT_STYLES: frozenset[str] = frozenset(get_args(PersistentStyle))
EVENT_STYLES: frozenset[str] = frozenset(get_args(EventStyle))
VIEW_DEPENDENT_STYLES = frozenset({"vqa", "trace"})
KNOWN_STYLES = PERSISTENT_STYLES | EVENT_STYLES
ROLES: frozenset[str] = frozenset(get_args(Role))
VQA_QUESTION_TYPES: tuple[QuestionType, ...] = get_args(QuestionType)
