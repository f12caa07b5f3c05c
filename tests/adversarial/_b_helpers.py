"""Helpers of the adversarial tests of issue 13 (staging keys, locks, kill -9, existing rows, faults)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

FAST = ["--plan.n_task_rephrasings=2", "--plan.min_subtask_seconds=0.3", "--interjections.interjection_min_t=0.1"]


def file_hashes(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """relative path -> sha256 of every file under `root` (symlinks followed)."""
    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not any(rel.startswith(s) for s in skip):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("LEROBOT_KEYFRAMES_CRASH_AT", None)
    env.update(extra)
    return env


def annotate_argv(root: Path, out: Path | None, api_base: str, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "lerobot_keyframes.cli", "annotate", f"--root={root}",
            "--vlm.backend=openai", "--vlm.model_id=fake-model", f"--vlm.api_base={api_base}",
            "--vlm.max_retries=0", *FAST, *extra]
    if out is not None:
        argv.append(f"--out={out}")
    return argv


def run_cli(argv: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=cli_env(**env), capture_output=True, text=True, timeout=timeout, cwd=REPO)


def wait_for(predicate, timeout: float = 120.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def rows_by_episode(root: Path) -> dict[int, list[tuple]]:
    """Every stored language row per episode, as sortable tuples (for exact comparisons)."""
    from lerobot_keyframes.language import read_dataset_annotations

    anns, _ = read_dataset_annotations(root)
    return {e: sorted((str(r.style), r.timestamp, r.role, str(r.content), str(r.camera), repr(r.tool_calls))
                      for r in a.rows) for e, a in anns.items()}


def styles(root: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rows in rows_by_episode(root).values():
        for r in rows:
            counts[r[0]] = counts.get(r[0], 0) + 1
    return counts


def provenance(root: Path) -> dict[str, Any]:
    return json.loads((Path(root) / "meta/annotation_provenance.json").read_text())


def episode_tasks(root: Path) -> dict[int, str]:
    from lerobot_keyframes.dataset import load_episodes

    return {int(r["episode_index"]): r["task"] for r in load_episodes(root).to_list()}


def request_text(request: dict[str, Any]) -> str:
    parts = []
    for m in request.get("messages", []):
        c = m.get("content")
        parts.extend([c] if isinstance(c, str) else [b.get("text", "") for b in c or [] if b.get("type") == "text"])
    return "\n".join(parts)


def validate_ok(root: Path) -> bool:
    from lerobot_keyframes.language import validate_dataset

    report = validate_dataset(root)
    if not report.ok:
        print(report.format())
    return report.ok
