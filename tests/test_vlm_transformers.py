"""transformers backend with each tiny Qwen-VL family: real generation, schema-enforced JSON (random weights)."""

from __future__ import annotations

import asyncio
import os
import pickle

import jsonschema
import pytest
from PIL import Image

from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import (
    FailureKind,
    VlmConfig,
    estimate_max_tokens,
    make_backend,
    make_xgrammar_safe,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")

SCHEMA = make_xgrammar_safe(
    {
        "type": "object",
        "properties": {
            "subtasks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "start": {"type": "number", "minimum": 0, "maximum": 60},
                        "end": {"type": "number", "minimum": 0, "maximum": 60},
                        "text": {"type": "string", "maxLength": 24},
                    },
                    "required": ["start", "end", "text"],
                },
                "maxItems": 3,
            },
            "success": {"type": "boolean"},
            "label": {"enum": ["pick", "place", "push"]},
        },
        "required": ["subtasks", "success", "label"],
    }
)
SMALL_SCHEMA = {
    "type": "object",
    "properties": {"done": {"type": "boolean"}},
    "required": ["done"],
    "additionalProperties": False,
}


def image(color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, color)


def mixed_batch() -> list[list[dict]]:
    frames = [image((i * 50, 20, 200 - i * 40)) for i in range(4)]
    return [
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": image((255, 0, 0))},
                    {"type": "text", "text": "What is red?"},
                ],
            }
        ],
        [
            {"role": "system", "content": "You annotate robot episodes."},
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": image((0, 255, 0))},
                    {"type": "image", "image": image((0, 0, 255), (80, 60))},
                    {"type": "image", "image": image((9, 9, 9))},
                    {"type": "text", "text": "Compare the three views of the task."},
                ],
            },
        ],
        [
            {
                "role": "user",
                "content": [
                    {"type": "video", "video": frames, "fps": 2.0, "timestamps": [0.5, 1.0, 1.5, 2.0]},
                    {"type": "text", "text": "Split the video into subtasks."},
                ],
            }
        ],
        [{"role": "user", "content": "Text only, no image at all, a longer prompt than the others."}],
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Before"},
                    {"type": "image", "image": image((100, 100, 0))},
                    {"type": "text", "text": "and after:"},
                    {"type": "image", "image": image((0, 100, 100))},
                ],
            }
        ],
    ]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and spinning OpenMP workers make a shared,
    overloaded CI machine much slower: use one thread here, restore the setting afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=FAMILIES)
def backend(request: pytest.FixtureRequest):
    path = tiny_qwen_cached(request.param)
    return make_backend(
        VlmConfig(model_id=str(path), max_new_tokens=estimate_max_tokens(SCHEMA), batch_size=8)
    )


def test_mixed_batch_schema_output_parses_for_every_item(backend) -> None:
    convs = mixed_batch()
    results = backend.generate(convs, SCHEMA)
    assert len(results) == len(convs)
    for i, result in enumerate(results):
        assert result.ok, (i, result.failure, result.text)
        assert result.schema_enforced and result.finish_reason == "stop" and result.attempts == 1
        jsonschema.validate(result.parsed, SCHEMA)
        assert result.completion_tokens and result.completion_tokens <= estimate_max_tokens(SCHEMA)
    # greedy decoding is deterministic: same batch, same answers
    again = backend.generate(convs, SCHEMA)
    assert [r.text for r in again] == [r.text for r in results]
    # input order is kept: prompt lengths follow the conversations, whatever the batch order
    reversed_results = backend.generate(list(reversed(convs)), SCHEMA)
    assert [r.prompt_tokens for r in reversed(reversed_results)] == [r.prompt_tokens for r in results]
    assert len({r.prompt_tokens for r in results}) == len(results)


def test_per_conversation_schemas_and_free_text(backend) -> None:
    convs = mixed_batch()[:3]
    results = backend.generate(convs, [SMALL_SCHEMA, None, SCHEMA])
    assert results[0].ok and isinstance(results[0].parsed["done"], bool)
    assert results[1].parsed is None and not results[1].schema_enforced
    assert results[2].ok and "subtasks" in results[2].parsed


def test_truncation_is_detected_and_retried_once(backend) -> None:
    tight = backend.config.replace(max_new_tokens=3, truncation_retry_factor=2.0)
    small = type(backend)(tight)
    result = small.generate(mixed_batch()[:1], SCHEMA)[0]
    assert result.failure is not None and result.failure.kind is FailureKind.TRUNCATED
    assert result.finish_reason == "length" and result.attempts == 2 and result.completion_tokens == 6
    assert result.text.startswith("{")  # raw text kept for the log
    rescued = type(backend)(backend.config.replace(max_new_tokens=3, truncation_retry_factor=10.0))
    ok = rescued.generate(mixed_batch()[:1], SMALL_SCHEMA)[0]
    assert ok.ok and ok.attempts == 2 and ok.finish_reason == "stop"


def test_seeded_sampling_is_reproducible(backend) -> None:
    sampled = type(backend)(backend.config.replace(temperature=1.0, seed=1234))
    convs = mixed_batch()[:2]
    first = sampled.generate(convs, SCHEMA)
    second = sampled.generate(convs, SCHEMA)
    assert [r.text for r in first] == [r.text for r in second]
    assert all(r.ok for r in first)


def test_async_and_pickled_backends(backend) -> None:
    convs = mixed_batch()[:2]
    sync = backend.generate(convs, SMALL_SCHEMA)
    via_async = asyncio.run(backend.agenerate(convs, SMALL_SCHEMA))
    assert [r.text for r in via_async] == [r.text for r in sync]
    clone = pickle.loads(pickle.dumps(backend))
    assert len(pickle.dumps(backend)) < 4096  # the config only, never the model
    assert [r.text for r in clone.generate(convs, SMALL_SCHEMA)] == [r.text for r in sync]


def test_video_timestamps_reach_the_prompt() -> None:
    path = tiny_qwen_cached("qwen3_vl")
    backend = make_backend(VlmConfig(model_id=str(path)))
    block = {
        "type": "video",
        "video": [image((i * 60, 0, 0)) for i in range(4)],
        "timestamps": [3.0, 3.5, 4.0, 4.5],
    }
    inputs = backend._processor_inputs(backend.loaded, [[{"role": "user", "content": [block]}]])
    prompt = backend.loaded.processor.tokenizer.decode(inputs["input_ids"][0])
    # Qwen3-VL writes one timestamp per temporal patch (2 frames): means of (3.0, 3.5) and (4.0, 4.5)
    assert "<3.2 seconds>" in prompt and "<4.2 seconds>" in prompt


def test_video_fps_sets_qwen2_5_temporal_spacing() -> None:
    path = tiny_qwen_cached("qwen2_5_vl")
    backend = make_backend(VlmConfig(model_id=str(path)))
    block = {
        "type": "video",
        "video": [image((0, i * 60, 0)) for i in range(4)],
        "timestamps": [0.0, 0.25, 0.5, 0.75],
    }
    inputs = backend._processor_inputs(backend.loaded, [[{"role": "user", "content": [block]}]])
    # 4 frames/s sampled, 2 frames per temporal patch -> 0.5 s per grid step
    assert [float(x) for x in inputs["second_per_grid_ts"]] == [0.5]


def test_bad_input_names_the_conversation(backend) -> None:
    with pytest.raises(ValueError, match="conversation 1, message 0, block 0"):
        backend.generate([mixed_batch()[0], [{"role": "user", "content": [{"type": "image"}]}]])
    with pytest.raises(ValueError, match="2 conversations but 3 schemas"):
        backend.generate(mixed_batch()[:2], [None, None, None])


def test_grammar_never_allows_special_or_padded_tokens_inside_strings() -> None:
    import xgrammar as xgr

    from lerobot_keyframes.vlm.grammar import GrammarCache, build_tokenizer_info

    path = tiny_qwen_cached("qwen2_vl")
    backend = make_backend(VlmConfig(model_id=str(path)))
    state = backend.loaded
    tokenizer = state.processor.tokenizer
    info = build_tokenizer_info(tokenizer, state.vocab_size, state.stop_ids)
    schema = make_xgrammar_safe(
        {"type": "object", "properties": {"t": {"type": "string"}}, "required": ["t"]}
    )
    matcher = xgr.GrammarMatcher(GrammarCache(info).get(schema))
    for token in tokenizer.encode('{"t":"', add_special_tokens=False):
        assert matcher.accept_token(token)
    mask = xgr.allocate_token_bitmask(1, state.vocab_size)
    matcher.fill_next_token_bitmask(mask, 0)

    def allowed(token_id: int) -> bool:
        return bool((int(mask[0, token_id // 32]) >> (token_id % 32)) & 1)

    assert allowed(tokenizer.convert_tokens_to_ids("a"))
    special = [
        tokenizer.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|image_pad|>", "<|vision_start|>")
    ]
    assert not any(allowed(t) for t in special)
    assert len(tokenizer) < state.vocab_size and not any(
        allowed(t) for t in range(len(tokenizer), state.vocab_size)
    )
