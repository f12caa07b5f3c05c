"""The openai backend against a real vLLM OpenAI server on 127.0.0.1, started by auto_serve."""

from __future__ import annotations

import socket

import jsonschema
import pytest
from vllm_tier_common import ENGINE, SCHEMA, batch

from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import VlmConfig, estimate_max_tokens, make_backend
from lerobot_keyframes.vlm.serve import served_models

pytestmark = pytest.mark.vllm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    path = tiny_qwen_cached("qwen3_vl", head_dim=64)
    cfg = VlmConfig(
        backend="openai",
        model_id=str(path),
        api_base=f"http://127.0.0.1:{free_port()}/v1",
        auto_serve=True,
        serve_timeout=300,
        max_new_tokens=estimate_max_tokens(SCHEMA),
        client_concurrency=4,
        seed=0,
        **ENGINE,
    )
    backend = make_backend(cfg)
    yield backend
    backend.close()
    assert served_models(cfg.api_base) is None  # the server we started is gone


def test_structured_output_through_a_real_vllm_server(served) -> None:
    convs = batch(8)
    results = served.generate(convs, SCHEMA)
    for i, result in enumerate(results):
        assert result.ok, (i, result.failure, result.text)
        assert result.schema_enforced and result.finish_reason == "stop"
        jsonschema.validate(result.parsed, SCHEMA)
    again = served.generate(convs, SCHEMA)
    assert [r.text for r in again] == [r.text for r in results]
    flipped = served.generate(list(reversed(convs)), SCHEMA)
    assert [r.prompt_tokens for r in reversed(flipped)] == [r.prompt_tokens for r in results]


def test_truncation_retry_through_the_server(served) -> None:
    tight = type(served)(served.config.replace(max_new_tokens=3, auto_serve=False))
    result = tight.generate(batch(1), SCHEMA)[0]
    assert result.attempts == 2 and result.finish_reason == "length" and not result.ok
