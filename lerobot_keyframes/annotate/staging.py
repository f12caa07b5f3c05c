"""Staging: one JSONL file per (episode, module), written atomically, keyed by what produced it.

A staged file is reused on a re-run (resume) only when its key — a hash of the module config, the
model id and revision, and the prompts — matches; otherwise the module runs again. Staged rows are
lerobot language rows plus the exact float32 `timestamp` they belong to (events included).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAGING_VERSION = 1


@dataclass(frozen=True)
class StagedModule:
    episode_index: int
    module: str
    key: str
    rows: list[dict[str, Any]]
    info: dict[str, Any]


class Staging:
    """The staging tree: `<dir>/episode-XXXXXX/<module>.jsonl` (+ `<module>.error.json` on failure)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

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
            rows = [json.loads(line) for line in lines[1:] if line.strip()]
        except (OSError, ValueError, IndexError):
            return None  # unreadable staging is recomputed, never trusted
        if header.get("version") != STAGING_VERSION or header.get("rows") != len(rows):
            return None
        return StagedModule(episode_index, module, header.get("key", ""), rows, header.get("info", {}))

    def lookup(self, episode_index: int, module: str, key: str) -> StagedModule | None:
        staged = self.read(episode_index, module)
        return staged if staged is not None and staged.key == key else None

    def write(
        self, episode_index: int, module: str, key: str, rows: list[dict[str, Any]], info: dict[str, Any] | None = None
    ) -> Path:
        header = {"version": STAGING_VERSION, "episode_index": episode_index, "module": module, "key": key,
                  "rows": len(rows), "info": info or {}}
        text = "\n".join(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in [header, *rows]) + "\n"
        path = self.path(episode_index, module)
        _atomic_write(path, text)
        self.error_path(episode_index, module).unlink(missing_ok=True)
        return path

    def write_error(self, episode_index: int, module: str, key: str, message: str) -> None:
        _atomic_write(
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

    def rows(self, episode_index: int, modules: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
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


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
