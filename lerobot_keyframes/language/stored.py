"""Read the language rows a dataset already stores, per episode, with each episode's exact frame times."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa

from .annotations import EpisodeAnnotations
from .report import ValidationReport
from .schema import LANGUAGE_COLUMNS, LANGUAGE_EVENTS, LANGUAGE_PERSISTENT, LanguageRow, decode_stored_rows


def read_dataset_annotations(root: str | Path, *, episodes: Iterable[int] | None = None,
                             report: ValidationReport | None = None) -> tuple[dict[int, EpisodeAnnotations],
                                                                               dict[int, np.ndarray]]:
    """Language rows stored in a dataset's data shards, per episode, with each episode's frame timestamps.

    Persistent rows are taken from the episode's first frame; every other frame must carry the identical
    list (reported as `persistent_not_constant` otherwise). Events take the time of the frame they sit on.
    """
    import pyarrow.parquet as pq

    from ..dataset.episodes import build_episode_rows
    from ..dataset.layout import DatasetLayout
    from ..dataset.records import Episode

    layout = DatasetLayout.open(root)
    report = report if report is not None else ValidationReport()
    by_file: dict[str, list[Episode]] = defaultdict(list)
    for row in build_episode_rows(layout, episodes=episodes):
        episode = Episode.from_row(row)
        by_file[episode.data_file].append(episode)
    out: dict[int, EpisodeAnnotations] = {}
    times: dict[int, np.ndarray] = {}
    for rel, eps in sorted(by_file.items()):
        path = layout.root / rel
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=[c for c in ("episode_index", *LANGUAGE_COLUMNS) if c in names])
        ep_col = table["episode_index"].to_numpy()
        for episode in eps:
            e = episode.episode_index
            times[e] = episode.timestamps
            idx = np.nonzero(ep_col == e)[0]
            start, n = (int(idx[0]), len(idx)) if len(idx) else (0, 0)
            persistent = persistent_rows(table, start, n, report=report, episode_index=e)
            events = event_rows(table, start, n, episode.timestamps)
            out[e] = EpisodeAnnotations(e, tuple(persistent), tuple(events))
    return out, times


def persistent_rows(table: pa.Table, start: int, n: int, *, report: ValidationReport | None = None,
                    episode_index: int | None = None) -> list[LanguageRow]:
    """The persistent list of the episode in rows [start, start + n) (its first frame's); with `report`, checked
    to be the same on every frame."""
    if LANGUAGE_PERSISTENT not in table.column_names or not n:
        return []
    cells = table[LANGUAGE_PERSISTENT].slice(start, n if report is not None else 1).to_pylist()
    first = cells[0] or []
    if report is not None and any((c or []) != first for c in cells[1:]):
        report.error("persistent_not_constant",
                     "language_persistent differs between frames of the episode; it must be the same "
                     "list on every frame", episode_index=episode_index)
    return decode_stored_rows(first)


def event_rows(table: pa.Table, start: int, n: int, timestamps: np.ndarray) -> list[LanguageRow]:
    """The events of rows [start, start + n), each timed by its frame (`timestamps[k]` for row start + k)."""
    if LANGUAGE_EVENTS not in table.column_names or not n:
        return []
    events: list[LanguageRow] = []
    for k, cell in enumerate(table[LANGUAGE_EVENTS].slice(start, n).to_pylist()):
        events.extend(decode_stored_rows(cell or [], timestamp=float(timestamps[k])))
    return events
