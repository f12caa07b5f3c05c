"""`annotate` end to end on real vLLM (CPU build): the in-process engine and a real vLLM OpenAI server.

Eight episodes with the default episodes in flight, as a user runs it: every episode annotated, the rows
validate, and the in-process engine got multi-conversation batches from one thread (several threads
entering one `vllm.LLM` abort the process).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from vllm_tier_common import ENGINE

from lerobot_keyframes.annotate import AnnotateConfig, InterjectionsConfig, PlanConfig, run_annotation
from lerobot_keyframes.language import read_dataset_annotations, validate_dataset
from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import VlmConfig, make_backend
from lerobot_keyframes.vlm.batching import wrap_in_process

pytestmark = pytest.mark.vllm

# an interjection cue shows 2 frames; contact sheets and VQA one image each
LIMITS = {**ENGINE, "limit_mm_per_prompt": {"image": 2, "video": 0}}


@pytest.fixture(scope="module")
def eight_episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("eight") / "ds", episodes=8, episode_seconds=1.5)


def _config(root: Path, out: Path) -> AnnotateConfig:
    return AnnotateConfig(
        root=root, out=out, video_backend="pyav",
        plan=PlanConfig(n_task_rephrasings=1, min_subtask_seconds=0.3, subtask_describe_first=False),
        interjections=InterjectionsConfig(interjection_min_t=0.1, interjection_window_frames=2),
    )


def _check_output(result, out: Path) -> None:
    assert result.failures == {}, result.failures
    assert result.validation.ok, result.validation.format()
    assert validate_dataset(out).ok
    annotations, _ = read_dataset_annotations(out)
    assert sorted(e for e, a in annotations.items() if not a.empty) == list(range(8))
    # the acknowledgement (a speech atom) always; cues need two spans, which a random-weight model may not give
    assert {"subtask", "plan", "vqa", "speech"} <= set(result.rows_per_style)


def test_annotate_on_the_in_process_vllm_engine(eight_episodes: Path, tmp_path: Path) -> None:
    model = tiny_qwen_cached("qwen2_5_vl", head_dim=64)
    vlm = VlmConfig(backend="vllm", model_id=str(model), max_new_tokens=1024, seed=0, **LIMITS)
    # no timer: a batch goes when full or when every episode in flight waits, however loaded the machine is
    scheduler = wrap_in_process(make_backend(vlm), max_wait_s=3600)
    try:
        result = run_annotation(_config(eight_episodes, tmp_path / "out"), vlm, vlm=scheduler)
    finally:
        scheduler.close()
    _check_output(result, tmp_path / "out")
    stats = result.batches
    assert stats is not None and max(stats.sizes) <= ENGINE["max_num_seqs"]
    assert stats.mean > 4, stats.summary()  # 8 episodes in flight share the engine's batches


def test_annotate_through_a_real_vllm_server(eight_episodes: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = tiny_qwen_cached("qwen2_5_vl", head_dim=64)
    vlm = VlmConfig(backend="openai", model_id=str(model), api_base=f"http://127.0.0.1:{port}/v1", auto_serve=True,
                    serve_timeout=300, max_new_tokens=1024, seed=0, client_concurrency=8, **LIMITS)
    result = run_annotation(_config(eight_episodes, tmp_path / "out"), vlm)
    _check_output(result, tmp_path / "out")
    assert result.batches is None  # a server keeps its own concurrency: no scheduler in front of it
