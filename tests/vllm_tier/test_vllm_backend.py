"""The in-process vllm backend with the tiny head_dim-64 model and structured outputs (vLLM on CPU)."""

from __future__ import annotations

import jsonschema
import pytest
from vllm_tier_common import ENGINE, SCHEMA, batch, video_conversation

from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import FailureKind, VlmConfig, estimate_max_tokens, make_backend

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def backend():
    path = tiny_qwen_cached("qwen2_5_vl", head_dim=64)
    backend = make_backend(
        VlmConfig(
            backend="vllm", model_id=str(path), max_new_tokens=estimate_max_tokens(SCHEMA), seed=0, **ENGINE
        )
    )
    yield backend
    backend.close()


def test_schema_output_parses_deterministic_and_in_order(backend) -> None:
    convs = batch(8)
    results = backend.generate(convs, SCHEMA)
    assert len(results) == 8
    for i, result in enumerate(results):
        assert result.ok, (i, result.failure, result.text)
        assert result.schema_enforced and result.finish_reason == "stop"
        jsonschema.validate(result.parsed, SCHEMA)
    again = backend.generate(convs, SCHEMA)
    assert [r.text for r in again] == [r.text for r in results]
    # prompt lengths grow with i: results come back in input order
    flipped = backend.generate(list(reversed(convs)), SCHEMA)
    assert [r.prompt_tokens for r in reversed(flipped)] == [r.prompt_tokens for r in results]
    assert len({r.prompt_tokens for r in results}) == 8


def test_truncation_and_free_text(backend) -> None:
    tight = type(backend)(backend.config.replace(max_new_tokens=3, truncation_retry_factor=2.0))
    result = tight.generate(batch(2)[1:], SCHEMA)[0]
    assert result.failure is not None and result.failure.kind is FailureKind.TRUNCATED
    assert result.attempts == 2 and result.finish_reason == "length" and result.completion_tokens == 6
    free = backend.generate(batch(2), None)
    assert all(r.parsed is None and not r.schema_enforced for r in free)


def test_video_and_images_in_one_batch(backend) -> None:
    convs = [video_conversation(), *batch(3)]
    results = backend.generate(convs, SCHEMA)
    assert all(r.ok for r in results), [(r.failure, r.text) for r in results]
    image_free = backend.generate([[{"role": "user", "content": convs[0][0]["content"][1:]}]], SCHEMA)[0]
    assert results[0].prompt_tokens > image_free.prompt_tokens  # the frames reached the model
