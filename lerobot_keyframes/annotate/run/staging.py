"""Staging: one JSONL file per (episode, module), written atomically, keyed by what produced it.

A staged file is reused on a re-run (resume) only when its key — a hash of the module config, the
model id and revision, the prompts, the seed and the source (`keys.module_keys`) — matches AND the
episode's inputs (task, frame timestamps, video identity: `keys.episode_inputs`) are those it was
made from; otherwise the module runs again. Staged rows are `LanguageRow`s, one JSON object a line: lerobot's
row fields plus the exact float32 `timestamp` they belong to (events included); the header's `info` is what the
module passes downstream (`Module.save_result`).

One run per output at a time: `RunLock` holds an exclusive `flock` on a lock file beside the output
(and beside the staging directory) for the whole run and removes the files when the run ends; the kernel
releases the flock when the process dies, so the file a run killed with SIGKILL leaves never blocks the next.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...language.rows import LanguageRow, as_row
from ...utils.files import atomic_write_text

STAGING_VERSION = 1
INPUTS_FILE = "_inputs.json"  # episode -> inputs key of the run that opened this staging (for Ray actors)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedModule:
    episode_index: int
    module: str
    key: str
    rows: list[LanguageRow]
    info: dict[str, Any]


class Staging:
    """The staging tree: `<dir>/episode-XXXXXX/<module>.jsonl` (+ `<module>.error.json` on failure)."""

    def __init__(self, directory: str | Path, inputs: Mapping[int, str] | None = None) -> None:
        """`inputs`: episode -> inputs key (`keys.episodes_inputs`). Without it, the ones the run that opened
        this directory saved (`save_inputs`) apply, if any; episodes without one are not checked."""
        self.dir = Path(directory)
        if inputs is None:
            try:
                inputs = {int(k): str(v) for k, v in json.loads((self.dir / INPUTS_FILE).read_text()).items()}
            except (OSError, ValueError, AttributeError):
                inputs = None
        self.inputs: dict[int, str] | None = dict(inputs) if inputs is not None else None

    def save_inputs(self) -> None:
        """Record this run's episode inputs, so other processes opening the directory (Ray actors) check them."""
        if self.inputs is not None:
            atomic_write_text(self.dir / INPUTS_FILE, json.dumps({str(k): v for k, v in sorted(self.inputs.items())}))

    def _inputs_of(self, episode_index: int) -> str | None:
        return None if self.inputs is None else self.inputs.get(episode_index)

    def _episode_dir(self, episode_index: int) -> Path:
        return self.dir / f"episode-{episode_index:06d}"

    def path(self, episode_index: int, module: str) -> Path:
        return self._episode_dir(episode_index) / f"{module}.jsonl"

    def error_path(self, episode_index: int, module: str) -> Path:
        return self._episode_dir(episode_index) / f"{module}.error.json"

    def read(self, episode_index: int, module: str) -> StagedModule | None:
        path = self.path(episode_index, module)
        if not path.is_file():
            return None
        try:
            lines = path.read_text().splitlines()
            header = json.loads(lines[0])
            rows = [LanguageRow.from_dict(json.loads(line)) for line in lines[1:] if line.strip()]
        except (OSError, ValueError, IndexError, TypeError, AttributeError):
            return None  # unreadable staging is recomputed, never trusted
        if header.get("version") != STAGING_VERSION or header.get("rows") != len(rows):
            return None
        wanted = self._inputs_of(episode_index)
        if wanted is not None and header.get("inputs") != wanted:
            return None  # made from other episode inputs (another task text, video, dataset): never reused
        return StagedModule(episode_index, module, header.get("key", ""), rows, header.get("info", {}))

    def lookup(self, episode_index: int, module: str, key: str) -> StagedModule | None:
        staged = self.read(episode_index, module)
        return staged if staged is not None and staged.key == key else None

    def write(
        self, episode_index: int, module: str, key: str, rows: list[LanguageRow] | list[dict[str, Any]],
        info: dict[str, Any] | None = None,
    ) -> Path:
        header = {"version": STAGING_VERSION, "episode_index": episode_index, "module": module, "key": key,
                  "inputs": self._inputs_of(episode_index), "rows": len(rows), "info": info or {}}
        lines = [header, *(as_row(r).to_dict() for r in rows)]
        text = "\n".join(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in lines) + "\n"
        path = self.path(episode_index, module)
        atomic_write_text(path, text)
        self.error_path(episode_index, module).unlink(missing_ok=True)
        _crash_point("staging.write")
        return path

    def write_error(self, episode_index: int, module: str, key: str, message: str) -> None:
        atomic_write_text(
            self.error_path(episode_index, module),
            json.dumps({"episode_index": episode_index, "module": module, "key": key, "error": message}),
        )

    def errors(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.dir.glob("episode-*/*.error.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def episodes(self) -> list[int]:
        return sorted(int(p.name.split("-")[1]) for p in self.dir.glob("episode-*") if p.is_dir())

    def rows(self, episode_index: int, modules: list[str] | None = None) -> dict[str, list[LanguageRow]]:
        """module -> staged rows, for every staged module of the episode (or the given ones)."""
        out = {}
        for path in sorted(self._episode_dir(episode_index).glob("*.jsonl")):
            module = path.stem
            if modules is not None and module not in modules:
                continue
            staged = self.read(episode_index, module)
            if staged is not None:
                out[module] = staged.rows
        return out

    def current_rows(self, episode_index: int, keys: Mapping[str, str]) -> dict[str, list[LanguageRow]]:
        """module -> staged rows, only for the given modules and only entries made under their current key
        and from the episode's current inputs: a stale entry (another model, config, task, or a module this
        run does not run) is never assembled into the output."""
        out = {}
        for module, key in keys.items():
            staged = self.lookup(episode_index, module, key)
            if staged is not None:
                out[module] = staged.rows
        return out


class RunLockedError(FileExistsError):
    """Another run holds the output (or its staging); its pid, host and start time are in the message."""


class RunLock:
    """An exclusive `fcntl.flock` on lock files beside the output and the staging directory, for one run.

    A lock file holds who holds it — pid, host and start time, nothing else (no command line: it may carry
    `--vlm.api_key`) — and is readable by its owner only (0600); a second run fails at once with those in its
    message. The kernel drops the flock when the holder exits, killed or not, so the file a run killed with
    SIGKILL leaves behind never blocks the next run, which takes it over. A run that ends (cleanly or by an
    exception) removes its lock files while it still holds them; a run that opened the file just before
    that finds it unlinked once it gets the flock and starts over on a fresh file, so two runs never both
    hold a lock. Only the process that acquired the lock removes the files (a forked worker never does).
    Without `fcntl` (Windows) runs are not locked (a warning says so).
    """

    def __init__(self, *targets: Path) -> None:
        seen: list[Path] = []
        for target in targets:
            target = Path(target).expanduser().absolute()
            path = target.parent / f".{target.name}.lock"
            if path not in seen:
                seen.append(path)
        self.paths = seen
        self._files: list[tuple[Path, Any]] = []
        self._owner: int | None = None

    @staticmethod
    def holder(path: Path) -> str:
        """Who holds the lock file `path`: pid, host and start time (older lock files may hold more: not shown)."""
        try:
            info = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not isinstance(info, dict) or not info:
            return "another run (it has not written its details yet)"
        return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            logger.warning("no fcntl on this platform: concurrent runs into one output are not prevented")
            return self
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self._owner = os.getpid()
        try:
            for path in self.paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._files.append((path, _lock_file(path, record, fcntl)))
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        """Remove the lock files (while still holding them) and drop the locks; only in the acquiring process."""
        files, self._files = self._files, []
        mine = self._owner == os.getpid()
        for path, f in files:
            if mine:
                try:
                    if os.path.samestat(os.fstat(f.fileno()), os.stat(path, follow_symlinks=False)):
                        os.unlink(path)
                except (OSError, ValueError):
                    pass
            f.close()  # in the acquiring process the last descriptor: drops the flock (a forked copy does not)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # a run that raised before releasing (Ray driver): never hold it longer
        self.release()


def _lock_file(path: Path, record: str, fcntl: Any) -> Any:
    """Open `path` (created 0600, never through a symlink), take its flock, write `record`; the open file.

    Raises `RunLockedError` naming the holder when another process has it."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(50):
        f = os.fdopen(os.open(path, flags, 0o600), "r+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            target = path.with_name(path.name[1:-len(".lock")])
            raise RunLockedError(
                f"another annotation run is using {target}: {RunLock.holder(path)}. Wait for it to finish "
                f"or stop it (lock file {path}; the lock goes away when that process exits)."
            ) from None
        try:  # the holder before us may have removed the file between our open and our flock: start over
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(f.fileno()), current):
            os.fchmod(f.fileno(), 0o600)  # a lock file left by an older version was world-readable
            f.seek(0)
            f.truncate()
            f.write(record)
            f.flush()
            return f
        f.close()
    raise RunLockedError(f"{path}: the lock file kept being replaced while taking it; is another run starting?")


def _crash_point(name: str) -> None:
    from ...language.writer import crash_point

    crash_point(name)
