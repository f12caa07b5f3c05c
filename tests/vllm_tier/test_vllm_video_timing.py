"""In-process vLLM places a video's frames at their real times (Qwen3-VL writes them into the prompt)."""

from __future__ import annotations

import re

import pytest
from vllm_tier_common import ENGINE, SCHEMA, batch, image, video_conversation

from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import VlmConfig, estimate_max_tokens, make_backend

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def backend():
    path = tiny_qwen_cached("qwen3_vl", head_dim=64)
    backend = make_backend(
        VlmConfig(backend="vllm", model_id=str(path), max_new_tokens=estimate_max_tokens(SCHEMA), seed=0, **ENGINE)
    )
    yield backend
    backend.close()


def test_video_frames_are_placed_at_their_timestamps(backend) -> None:
    from vllm import SamplingParams

    video = video_conversation(timestamps=[1.0, 1.6, 2.2, 2.8])
    both = [{"role": "user", "content": [{"type": "image", "image": image((9, 9, 9))}, *video[0]["content"]]}]
    results = backend.generate([*batch(2), video, both], SCHEMA)  # chat for images, generate for videos
    assert all(r.ok for r in results), [(r.failure, r.text) for r in results]
    prompt = backend.engine.generate([backend.video_prompt(video)], SamplingParams(max_tokens=1), use_tqdm=False)[0]
    text = backend.engine.get_tokenizer().decode(prompt.prompt_token_ids)
    assert re.findall(r"<([0-9.]+) seconds>", text) == ["1.3", "2.5"]  # 2 merged frames per mark: their mean time
    assert results[2].prompt_tokens == len(prompt.prompt_token_ids)  # the backend sent exactly this prompt
    assert results[3].prompt_tokens > results[2].prompt_tokens  # the image went along with the video
