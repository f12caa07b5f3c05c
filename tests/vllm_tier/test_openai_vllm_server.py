"""The openai backend against a real vLLM OpenAI server on 127.0.0.1, started by auto_serve."""

from __future__ import annotations

import socket

import jsonschema
import pytest
from vllm_tier_common import ENGINE, SCHEMA, batch, video_conversation

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


def _prompt_seconds(served, conversation: list[dict], media: dict | None) -> list[str]:
    """The `<t seconds>` marks vLLM's Qwen3-VL writes into the prompt for the conversation's video."""
    import json
    import re
    import urllib.error
    import urllib.request

    from transformers import AutoTokenizer

    from lerobot_keyframes.vlm.messages import to_openai_messages
    from lerobot_keyframes.vlm.openai_wire import wire_json

    base = served.config.api_bases[0]
    body, _ = served._request_body(to_openai_messages(conversation), None, 4, base, media)
    wire = {**wire_json(body), "return_token_ids": True}
    request = urllib.request.Request(base.rstrip("/") + "/chat/completions", data=json.dumps(wire).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:2000]}") from exc
    text = AutoTokenizer.from_pretrained(served.config.model_id).decode(answer["prompt_token_ids"])
    return re.findall(r"<([0-9.]+) seconds>", text)


def test_the_server_places_video_frames_at_their_timestamps(served) -> None:
    """Without media_io_kwargs vLLM takes a JPEG sequence for 1 frame/s from 0 s."""
    from lerobot_keyframes.vlm.messages import media_io_kwargs

    conversation = video_conversation(timestamps=[1.0, 1.6, 2.2, 2.8])
    ours = _prompt_seconds(served, conversation, media_io_kwargs(conversation))
    assert ours == ["1.3", "2.5"]  # one mark per 2 merged frames: the mean of their real times
    assert _prompt_seconds(served, conversation, None) == ["0.5", "2.5"]  # what it was before
    result = served.generate([conversation], SCHEMA)[0]  # and the backend sends exactly that
    assert result.ok, (result.failure, result.text)
