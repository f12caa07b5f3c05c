"""Staging: atomic per-(episode, module) files, reused only under the same key, never trusted when broken."""

from __future__ import annotations

from pathlib import Path

from lerobot_keyframes.annotate.config import AnnotateConfig, PlanConfig, config_hash
from lerobot_keyframes.annotate.staging import Staging


def test_roundtrip_and_key_lookup(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    rows = [{"role": "assistant", "content": "x", "style": "subtask", "timestamp": 0.0, "camera": None, "tool_calls": None}]
    staging.write(3, "plan", "k1", rows, {"spans": []})
    assert staging.lookup(3, "plan", "k1").rows == rows
    assert staging.lookup(3, "plan", "k2") is None
    assert staging.episodes() == [3]
    assert staging.rows(3) == {"plan": rows}


def test_truncated_file_is_not_trusted(tmp_path: Path) -> None:
    staging = Staging(tmp_path)
    rows = [{"a": 1}, {"a": 2}]
    path = staging.write(0, "vqa", "k", rows)
    path.write_text(path.read_text().splitlines()[0] + "\n" + '{"a": 1}\n')  # one row lost
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
