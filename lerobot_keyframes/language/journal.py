"""All-or-nothing in-place writes: new files beside the dataset, a commit record, then renames into place.

Every new file is written under `<root>/.lerobot_keyframes/journal/new/`; `journal.json` (state "committed",
the file list) then commits the swap, and the files are renamed into place, data shards first and
`meta/info.json` (which declares their columns) last. A write killed before the commit leaves the dataset
as it was; one killed after it is finished by the next write or run (`recover_interrupted_write`), before
anything reads the dataset. Tests kill the process at named `crash_point`s to prove both.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from ..dataset.errors import DatasetFormatError
from ..dataset.layout import INFO_PATH
from ..utils.files import atomic_write_text, replace_file

logger = logging.getLogger(__name__)

JOURNAL_DIR = ".lerobot_keyframes/journal"  # in-place writes: new files + commit record (pushes skip the folder)
CRASH_ENV = "LEROBOT_KEYFRAMES_CRASH_AT"  # tests: "point" or "point:N" kills the process (SIGKILL) there
_crash_counts: Counter[str] = Counter()
Recovery = Literal["rolled_forward", "rolled_back"]
JournalState = Literal["committed", "uncommitted"]
T = TypeVar("T")


def crash_point(name: str) -> None:
    """Tests kill the process here (SIGKILL) when `LEROBOT_KEYFRAMES_CRASH_AT` names this point ("name[:N]")."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _crash_counts[name] += 1
    if _crash_counts[name] >= int(nth or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def inside(root: Path, rel: str) -> Path:
    """`root / rel`, refusing absolute paths and `..` (a journal or caller never writes outside the root)."""
    path = Path(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{rel!r} is not a path inside {root}")
    return root / path


class PendingWriteError(DatasetFormatError):
    """The root holds the journal of an in-place write that was killed: its files may disagree until it is finished."""


def pending_write(root: str | Path) -> JournalState | None:
    """The state of an unfinished in-place write in `root` ("committed": part of it swapped in; "uncommitted":
    nothing swapped in yet), or None when there is none. Reads only; `recover_interrupted_write` finishes it."""
    journal = Path(root) / JOURNAL_DIR
    if not journal.is_dir() or journal.is_symlink():
        return None
    try:
        record = json.loads((journal / "journal.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    return "committed" if isinstance(record, dict) and record.get("state") == "committed" else "uncommitted"


def check_no_pending_write(root: str | Path, *, action: str = "read") -> None:
    """Refuse to use a root whose in-place write was killed midway (the readers and every Hub writer call this).

    A committed journal means some files are new and some old (e.g. data shards with the language columns and a
    meta/info.json without them); an uncommitted one leaves files beside the dataset that a reader could mistake.

    Raises:
        `PendingWriteError`: one line naming the root, what is unfinished and how to finish it.
    """
    state = pending_write(root)
    if state is None:
        return
    what = ("it was committed but not every file was swapped in, so its data shards and meta/info.json may "
            "disagree" if state == "committed" else "it stopped before its commit; the dataset is as before it")
    raise PendingWriteError(
        f"{root}: an in-place write was interrupted ({JOURNAL_DIR}/ remains: {what}); refusing to {action} it. "
        "Re-run the command that was writing there (it finishes or undoes the write first), or call "
        f"lerobot_keyframes.language.recover_interrupted_write({str(root)!r})"
    )


def recover_interrupted_write(root: str | Path) -> Recovery | None:
    """Finish or undo an in-place write that was killed: "rolled_forward", "rolled_back" or None (none found).

    Before the journal's commit record the dataset was not touched: the new files are discarded. After
    it, every new file still waiting is renamed into place. Both are safe to repeat if killed again.
    """
    root = Path(root)
    journal = root / JOURNAL_DIR
    if not journal.is_dir() or journal.is_symlink():
        return None
    try:
        record = json.loads((journal / "journal.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    if not (isinstance(record, dict) and record.get("state") == "committed"):
        _remove_journal(journal)
        logger.warning("%s: discarded an in-place write that was interrupted before its commit; the dataset is as "
                       "it was before that write", root)
        return "rolled_back"
    files = [str(f) for f in record.get("files", [])]
    moved = 0
    for rel in files:
        src = inside(journal / "new", rel)
        if src.is_file():
            dst = inside(root, rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            replace_file(src, dst)
            moved += 1
    _remove_journal(journal)
    logger.warning("%s: finished an interrupted in-place write (%d of %d file(s) were still to swap in)",
                   root, moved, len(files))
    return "rolled_forward"


def _remove_journal(journal: Path) -> None:
    shutil.rmtree(journal, ignore_errors=True)
    try:
        journal.parent.rmdir()  # the `.lerobot_keyframes` folder, when nothing else is in it
    except OSError:
        pass


def write_journaled(root: Path, prepare: Callable[[Path], T]) -> T:
    """Swap into `root`, all or nothing, every file `prepare(new_root)` writes under `new_root`; returns its result.

    Call `recover_interrupted_write(root)` first: anything left in the journal then was never committed.
    """
    journal = root / JOURNAL_DIR
    shutil.rmtree(journal, ignore_errors=True)
    new_root = journal / "new"
    new_root.mkdir(parents=True)
    try:
        result = prepare(new_root)
    except BaseException:  # a write that failed (disk full, ...) before its commit: the dataset is as it was
        _remove_journal(journal)  # so leave no journal that would make every reader refuse it
        raise
    files = sorted(p.relative_to(new_root).as_posix() for p in new_root.rglob("*") if p.is_file())
    crash_point("journal.prepared")
    atomic_write_text(journal / "journal.json", json.dumps({"state": "committed", "files": files}, indent=1))
    crash_point("journal.committed")
    for rel in sorted(files, key=lambda f: (f == INFO_PATH, f)):  # data shards first, meta/info.json last
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        replace_file(new_root / rel, dst)
        crash_point("journal.swap")
    _remove_journal(journal)
    return result
