"""`EpisodeAnnotations`: the typed record language rows travel in between staging, validator and writer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .schema import LANGUAGE_PERSISTENT, STYLE_RULES, LanguageRow, as_row


@dataclass(frozen=True)
class EpisodeAnnotations:
    """The language rows of one episode: persistent rows and event rows, each with its exact frame time."""

    episode_index: int
    persistent: tuple[LanguageRow, ...] = ()
    events: tuple[LanguageRow, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "persistent", tuple(as_row(r) for r in self.persistent))
        object.__setattr__(self, "events", tuple(as_row(r) for r in self.events))

    @classmethod
    def from_rows(cls, episode_index: int, rows: Iterable[LanguageRow | Mapping[str, Any]]) -> EpisodeAnnotations:
        """Split mixed rows (e.g. staged JSONL rows of every module) into the two columns by style."""
        persistent, events = [], []
        for r in rows:
            row = as_row(r)
            rule = STYLE_RULES.get(row.style)
            (persistent if rule is not None and rule.column == LANGUAGE_PERSISTENT else events).append(row)
        return cls(episode_index, tuple(persistent), tuple(events))

    @property
    def rows(self) -> tuple[LanguageRow, ...]:
        return self.persistent + self.events

    @property
    def empty(self) -> bool:
        return not self.persistent and not self.events
