"""Server faults through the real openai backend and a real HTTP server: one episode fails, the others finish."""

from __future__ import annotations

import json
import logging
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _b_helpers as h  # noqa: E402

from lerobot_keyframes.annotate import run_annotation  # noqa: E402
from lerobot_keyframes.annotate.config import AnnotateConfig, InterjectionsConfig, PlanConfig  # noqa: E402
from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer  # noqa: E402
from lerobot_keyframes.vlm.config import VlmConfig  # noqa: E402

pytest.importorskip("openai")

HUGE = "x" * 2_000_000

FAULTS = {
    "http500": lambda: (500, {"error": {"message": "scripted 500"}}),
    "http429": lambda: (429, {"error": {"message": "slow down"}}),
    "timeout": lambda: (200, {"choices": []}, 3.0),
    "unreadable200": lambda: (200, b"<html>this is not json"),
    "not_a_completion200": lambda: (200, {"object": "error", "message": "overloaded"}),
    "wrong_shape": lambda: json.dumps({"id": 7, "ok": True}),  # a server that does not enforce the schema
    "huge_field": lambda: json.dumps({"description": HUGE, "subtasks": HUGE}),
}


def _config(root: Path, out: Path, **kw) -> AnnotateConfig:
    return AnnotateConfig(root=root, out=out, plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
                          interjections=InterjectionsConfig(interjection_min_t=0.1), **kw)


def _vlm(api_base: str) -> VlmConfig:
    return VlmConfig(backend="openai", model_id="fake-model", api_base=api_base, max_retries=1, retry_backoff=0.01,
                     request_timeout=1.0)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_fails_only_its_episode(fault: str, sample_root: Path, tmp_path: Path, caplog, capfd) -> None:
    task1 = h.episode_tasks(sample_root)[1]
    make = FAULTS[fault]

    def respond(request, attempt):
        return make() if task1 in h.request_text(request) else None

    out = tmp_path / "out"
    before = h.file_hashes(sample_root)
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(plausible=True, responder=respond) as server:
        result = run_annotation(_config(sample_root, out), _vlm(server.api_base))
    assert list(result.failures) == [1], result.failures
    message = result.failures[1]
    assert message.startswith("episode 1, module plan:"), message
    expected = {"http500": "HTTP 500", "http429": "HTTP 429", "timeout": "timed out", "unreadable200": "unreadable", "not_a_completion200": "not a chat completion (no 'choices')",
                "wrong_shape": "schema_mismatch", "huge_field": "schema_mismatch"}[fault]
    assert expected in message and "KeyError" not in message
    # bounded quotes everywhere: the failure, the staged error, every log line, stderr
    assert len(message) < 2000
    staged_error = next((tmp_path / "out.staging").rglob("*.error.json"))
    assert staged_error.stat().st_size < 4000
    assert max((len(r.getMessage()) for r in caplog.records), default=0) < 4000
    assert len(capfd.readouterr().err) < 200_000
    # the other episode is written and valid; the source is untouched
    assert result.validation.ok and h.rows_by_episode(out)[0] and h.rows_by_episode(out)[1] == []
    assert h.file_hashes(sample_root) == before


def test_connection_refused_fails_every_episode_and_writes_nothing(sample_root: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = tmp_path / "out"
    result = run_annotation(_config(sample_root, out), _vlm(f"http://127.0.0.1:{port}/v1"))
    assert sorted(result.failures) == [0, 1]
    assert all("connection failed" in m and f"127.0.0.1:{port}" in m for m in result.failures.values())
    assert not out.exists() and "all_episodes_failed" in result.validation.rules()


def test_cli_exit_code_and_message_on_a_failing_server(sample_root: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(responder=lambda request, attempt: (500, {"error": {"message": "down"}})) as server:
        proc = h.run_cli(h.annotate_argv(sample_root, tmp_path / "out", server.api_base))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "FAILED episode 0: episode 0, module plan:" in proc.stdout and "HTTP 500" in proc.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("enforced", [True, False])
def test_every_answer_is_schema_checked_and_quoted_bounded(enforced: bool) -> None:
    from lerobot_keyframes.annotate.modules import schemas
    from lerobot_keyframes.vlm.jsonparse import parse_answer
    from lerobot_keyframes.vlm.types import FailureKind

    schema = schemas.segment_schema(0.0, 2.0, 4)
    for text in (json.dumps({"id": 1, "ok": True}), json.dumps({"subtasks": [{"text": HUGE, "start": 0, "end": 1}]}),
                 json.dumps({"subtasks": HUGE})):
        value, failure = parse_answer(text, schema, enforced=enforced, finish_reason="stop")
        assert value is None and failure.kind is FailureKind.SCHEMA_MISMATCH
        assert len(str(failure)) < 1000
