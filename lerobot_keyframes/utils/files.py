"""Atomic file writes: a crash or kill -9 leaves the old file or the new one, never half of either.

The temp file lives in the target's directory (so `os.replace` is a rename), is hidden and never ends in the
target's suffix (no loader globbing `*.parquet` or `*.json` picks it up, no upload of a folder carries it), and is
fsynced before the rename; the directory is fsynced after it so the rename itself survives a power loss.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temp_path(path: Path) -> Path:
    """A unique hidden sibling of `path` to write before the rename."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def replace_file(tmp: Path, path: Path) -> None:
    """The commit point of every atomic write (tests replace it to simulate a crash just before it).

    A symlink at `path` (e.g. into a download cache) is replaced, never written through.
    """
    os.replace(tmp, path)
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path to write (by any library: pyarrow, PyAV, PIL); on success it becomes `path`.

    On any error the temp file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        replace_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace `path` by `data` atomically and durably."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace `path` by `text` (UTF-8, newlines as given) atomically and durably."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = True,
                      default: Any = None) -> Path:
    """Replace `path` by `obj` as JSON (with a final newline) atomically and durably."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")
