"""Staging: atomic per-(episode, module) files, reused only under the same key, never trusted when broken."""

from __future__ import annotations

import json
from pathlib import Path

from lerobot_keyframes.annotate.config import AnnotateConfig, PlanConfig, config_hash
from lerobot_keyframes.annotate.run.staging import Staging
from lerobot_keyframes.language.rows import LanguageRow, speech_atom


def test_roundtrip_and_key_lookup(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    rows = [LanguageRow("assistant", "x", "subtask", 0.0), speech_atom("hello", 0.5)]
    staging.write(3, "plan", "k1", rows, {"spans": []})
    assert staging.lookup(3, "plan", "k1").rows == rows
    assert staging.lookup(3, "plan", "k2") is None
    assert staging.episodes() == [3]
    assert staging.rows(3) == {"plan": rows}
    line = {"role": "assistant", "content": "x", "style": "subtask", "timestamp": 0.0, "camera": None, "tool_calls": None}
    assert json.loads(staging.path(3, "plan").read_text().splitlines()[1]) == line  # lerobot's row fields
    staging.write(4, "plan", "k1", [line])  # a row as a staged dict is the same row
    assert staging.lookup(4, "plan", "k1").rows == rows[:1]


def test_truncated_file_is_not_trusted(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    rows = [LanguageRow("user", "q", "vqa", 0.0, camera="front"), LanguageRow("user", "q", "vqa", 1.0, camera="front")]
    path = staging.write(0, "vqa", "k", rows)
    path.write_text("\n".join(path.read_text().splitlines()[:2]) + "\n")  # one row lost
    assert staging.read(0, "vqa") is None
    path.write_text("{broken")
    assert staging.read(0, "vqa") is None


def test_errors_are_recorded_and_cleared(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    staging.write_error(1, "plan", "k", "episode 1, module plan: boom")
    assert staging.errors()[0]["error"].endswith("boom")
    staging.write(1, "plan", "k", [])
    assert staging.errors() == []
    assert not list(tmp_path.rglob("*.tmp"))


def test_config_hash_is_stable_and_sensitive() -> None:
    a = AnnotateConfig(root=Path("/x"))
    assert config_hash(a.plan, "m") == config_hash(AnnotateConfig(root=Path("/y")).plan, "m")
    assert config_hash(a.plan, "m") != config_hash(PlanConfig(plan_max_steps=3), "m")
    assert config_hash(a.plan, "m") != config_hash(a.plan, "other-model")
