"""The batching scheduler in front of in-process engines, and annotation as one datasets.map step."""

from __future__ import annotations

import asyncio
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from lerobot_keyframes.annotate import (
    AnnotateConfig,
    AnnotationKeyframes,
    Annotator,
    run_annotation,
    write_annotations,
)
from lerobot_keyframes.annotate.config import ExecutorConfig, InterjectionsConfig, PlanConfig
from lerobot_keyframes.language import read_dataset_annotations, validate_dataset
from lerobot_keyframes.testing.scripted import ScriptedEngine, plausible_answers, prompt_text
from lerobot_keyframes.vlm import VlmConfig, make_backend
from lerobot_keyframes.vlm.batching import BatchingScheduler, wrap_in_process

ANSWER = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}


def echo(conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
    return {"echo": prompt_text(conversation)}


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


# A partial batch waits this long for more callers: far longer than any test runs, so in these tests a batch
# leaves only when it is full or when every registered caller is waiting, never because a timer ran out (batch
# sizes do not depend on how fast a loaded machine runs the callers).
NEVER_S = 3600.0


async def _callers(scheduler: BatchingScheduler, n: int, rounds: int, pause_s: float = 0.0) -> list[list[str]]:
    async def caller(k: int) -> list[str]:
        got = []
        async with scheduler.caller():
            for r in range(rounds):
                (result,) = await scheduler.agenerate([ask(f"caller {k} round {r}")], ANSWER)
                got.append(result.parsed["echo"])
                await asyncio.sleep(pause_s * (k % 3))  # callers may come back at different times
        return got

    return list(await asyncio.wait_for(asyncio.gather(*(caller(k) for k in range(n))), 120))  # a hang fails


def test_concurrent_callers_share_engine_batches_one_thread_owns_the_engine() -> None:
    engine = ScriptedEngine(echo, latency=0.02, batch_size=8)
    assert wrap_in_process(engine).max_batch == 8  # --vlm.batch_size
    scheduler = wrap_in_process(engine, max_wait_s=NEVER_S)
    assert isinstance(scheduler, BatchingScheduler) and scheduler.max_batch == 8
    answers = asyncio.run(_callers(scheduler, 16, 4))
    assert answers == [[f"caller {k} round {r}" for r in range(4)] for k in range(16)]  # each its own, in order
    assert engine.overlaps == 0 and len(engine.threads) == 1
    assert scheduler.stats.sizes == {8: 8}, scheduler.stats.summary()  # 16 callers, batches of 8: all full
    scheduler.close()


def test_a_batch_goes_when_every_registered_caller_is_waiting() -> None:
    """3 callers that come back after 0, 50 and 100 ms, batches of up to 8 and a timer that never runs out:
    each batch goes the moment the last of the three asks (the scheduler knows nothing more can come)."""
    engine = ScriptedEngine(echo, batch_size=8)
    scheduler = wrap_in_process(engine, max_wait_s=NEVER_S)
    answers = asyncio.run(_callers(scheduler, 3, 4, pause_s=0.05))
    assert answers == [[f"caller {k} round {r}" for r in range(4)] for k in range(3)]
    assert engine.batch_sizes == [3, 3, 3, 3], engine.batch_sizes
    scheduler.close()


def test_without_the_scheduler_each_call_is_one_conversation() -> None:
    """The baseline: the old path (`asyncio.to_thread(generate)` per call) gives the engine batches of 1."""
    engine = ScriptedEngine(echo, latency=0.005)

    async def main() -> None:
        async def caller(k: int) -> None:
            await engine.agenerate([ask(f"caller {k}")], ANSWER)

        await asyncio.gather(*(caller(k) for k in range(4)))

    with pytest.raises(RuntimeError, match="two threads at once"):
        asyncio.run(main())  # and concurrent calls enter it together, which one vLLM engine does not survive


def test_a_request_the_engine_refuses_fails_only_its_caller() -> None:
    engine = ScriptedEngine(echo, latency=0.01, fail_when=lambda conv: "poison" in prompt_text(conv))
    scheduler = wrap_in_process(engine)

    async def main() -> list[Any]:
        async def one(text: str) -> Any:
            try:
                (result,) = await scheduler.agenerate([ask(text)], ANSWER)
                return result.parsed["echo"]
            except ValueError as exc:
                return exc

        async with scheduler.caller(), scheduler.caller(), scheduler.caller():
            return await asyncio.gather(one("good 1"), one("poison"), one("good 2"))

    good1, bad, good2 = asyncio.run(main())
    assert (good1, good2) == ("good 1", "good 2")
    assert isinstance(bad, ValueError) and "refused this batch" in str(bad)
    assert scheduler.stats.split_batches == 1 and engine.batch_sizes[0] == 3  # tried together, then alone

    async def returned() -> Any:
        return await scheduler.agenerate([ask("poison")], ANSWER, raise_errors=False)

    (failed,) = asyncio.run(returned())
    assert failed.failure.kind.value == "request_failed" and failed.error is not None


def test_a_malformed_conversation_fails_its_caller_before_the_engine() -> None:
    engine = ScriptedEngine(echo)
    scheduler = wrap_in_process(engine)
    with pytest.raises(ValueError):
        asyncio.run(scheduler.agenerate([[{"role": "user", "content": [{"type": "image"}]}]], ANSWER))
    assert engine.batch_sizes == []


def test_servers_keep_their_own_concurrency() -> None:
    from lerobot_keyframes.testing.scripted import ScriptedBackend

    server_like = ScriptedBackend(echo)
    assert wrap_in_process(server_like) is server_like
    with pytest.raises(TypeError, match="needs no batching"):
        BatchingScheduler(type("Async", (), {"is_async": True, "config": None})(), 8)


# -- annotation: many episodes in flight, one step --------------------------------------------------------
VLM = VlmConfig(backend="transformers", model_id="scripted-engine")


def _config(root: Path, out: Path, **kw: Any) -> AnnotateConfig:
    return AnnotateConfig(root=root, out=out, plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
                          interjections=InterjectionsConfig(interjection_min_t=0.1), **kw)


@pytest.fixture(scope="module")
def eight_episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("eight") / "ds", episodes=8, episode_seconds=1.5)


def tagged(conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
    """Plausible answers that carry the episode's own object ("purple cube"), so a crossed answer shows."""
    text = prompt_text(conversation)
    m = re.search(r"pick up the (\w+ \w+)", text)
    tag = m.group(1) if m else "none"
    properties = (schema or {}).get("properties", {})
    if "subtasks" in properties:
        return plausible_answers(conversation, schema, subtasks=(f"grab the {tag}", f"place the {tag}"))
    if "rephrasings" in properties:
        return {"rephrasings": [f"move the {tag}", f"put the {tag} down"]}
    for key in ("memory", "speech", "description", "task"):
        if key in properties:
            return {key: f"about the {tag}"}
    if "interjection" in properties:
        return {"interjection": f"careful with the {tag}", "reply": f"ok, the {tag}",
                "plan": [f"place the {tag}"]}
    return plausible_answers(conversation, schema)


def test_annotate_batches_episodes_and_never_crosses_their_answers(eight_episodes: Path, tmp_path: Path) -> None:
    engine = ScriptedEngine(tagged, latency=0.01, batch_size=8)
    scheduler = wrap_in_process(engine, max_wait_s=NEVER_S)  # batches go when full or when every episode waits
    result = run_annotation(_config(eight_episodes, tmp_path / "out"), VLM, vlm=scheduler)
    scheduler.shutdown()
    assert result.failures == {} and result.validation.ok, result.validation.format()
    assert engine.overlaps == 0 and len(engine.threads) == 1
    assert result.batches.mean >= 3, result.batches.summary()  # 16 episodes in flight by default
    assert "engine batches:" in result.summary()
    annotations, _ = read_dataset_annotations(tmp_path / "out")
    tasks = {int(e): t for e, t in zip(*_episode_tasks(eight_episodes))}
    assert len(set(tasks.values())) > 1  # distinct tasks, so a crossed answer would show
    for e, ann in annotations.items():
        own = re.search(r"pick up the (\w+ \w+)", tasks[e]).group(1)
        texts = [r.content for r in ann.rows if r.style in ("subtask", "task_aug", "memory", "interjection")]
        assert texts and all(own in t for t in texts), (e, own, texts)


def _episode_tasks(root: Path) -> tuple[list[int], list[str]]:
    from lerobot_keyframes.dataset import load_episodes

    episodes = load_episodes(root)
    return list(episodes["episode_index"]), list(episodes["task"])


def test_a_failing_request_inside_a_batch_fails_only_its_episode(eight_episodes: Path, tmp_path: Path) -> None:
    from lerobot_keyframes.dataset import load_episodes

    victim_task = load_episodes(eight_episodes)["task"][3]
    engine = ScriptedEngine(tagged, latency=0.01, fail_when=lambda c: victim_task in prompt_text(c)
                            and "Ask one short question" in prompt_text(c))  # the victim's VQA requests
    result = run_annotation(_config(eight_episodes, tmp_path / "out"), VLM, vlm=engine)
    failed = {e for e, t in zip(*_episode_tasks(eight_episodes)) if t == victim_task}
    assert set(result.failures) == failed, result.failures
    assert all("module vqa" in m and "refused this batch" in m for m in result.failures.values())
    assert result.batches.split_batches >= 1
    annotations, _ = read_dataset_annotations(tmp_path / "out")
    assert {e for e, ann in annotations.items() if not ann.empty} == set(range(8)) - failed


def test_the_map_step_gives_the_rows_of_run_annotation(eight_episodes: Path, tmp_path: Path) -> None:
    """User's dataflow: keyframes as a datasets.map, then Annotator as a datasets.map, then the writer."""
    from lerobot_keyframes.dataset import load_episodes

    reference = run_annotation(_config(eight_episodes, tmp_path / "ref"), VLM, vlm=ScriptedEngine(tagged))
    assert reference.failures == {}

    config = _config(eight_episodes, tmp_path / "mapped")
    episodes = load_episodes(eight_episodes)
    keyframes = AnnotationKeyframes.for_annotation(episodes, config)
    with_frames = episodes.map(keyframes, batched=True, batch_size=4, features=keyframes.features(episodes.features))
    plain = pickle.loads(pickle.dumps(Annotator(config, VLM)))  # pickles as its configuration (num_proc workers)
    assert plain.keys == Annotator(config, VLM).keys and plain._engine is None
    annotator = Annotator(config, VLM, vlm=ScriptedEngine(tagged))
    annotated = with_frames.map(annotator, batched=True, batch_size=4, with_rank=True,
                                features=annotator.features(with_frames.features))
    stats = annotated["annotation_stats"]
    assert sum(s["frames_from_row"] for s in stats) > 0 and sum(s["frames_decoded"] for s in stats) <= 8 * 3
    assert all(err is None for err in annotated["annotation_error"])
    result = write_annotations(annotated, config, VLM)
    assert result.validation.ok and validate_dataset(tmp_path / "mapped").ok
    mapped, _ = read_dataset_annotations(tmp_path / "mapped")
    ref, _ = read_dataset_annotations(tmp_path / "ref")
    assert mapped == ref

    # a second map over the same rows resumes from staging: no model call at all
    engine = ScriptedEngine(tagged)
    again = with_frames.map(Annotator(config, VLM, vlm=engine), batched=True, batch_size=8,
                            load_from_cache_file=False)
    assert engine.calls == 0 and again["language_rows"] == annotated["language_rows"]


def test_episodes_in_flight_default_fills_the_engine_batches() -> None:
    from lerobot_keyframes.annotate.engine import episodes_in_flight

    config = AnnotateConfig(root=Path("."))
    assert episodes_in_flight(config, wrap_in_process(ScriptedEngine(echo, batch_size=32))) == 64
    assert episodes_in_flight(config, wrap_in_process(ScriptedEngine(echo, batch_size=8))) == 16
    assert episodes_in_flight(AnnotateConfig(root=Path("."), executor=ExecutorConfig(episode_parallelism=3)),
                              None) == 3


@pytest.mark.slow
def test_tiny_transformers_model_annotates_eight_episodes_in_engine_batches(eight_episodes: Path,
                                                                            tmp_path: Path) -> None:
    """The real transformers backend (tiny random-weight Qwen2.5-VL, xgrammar-enforced JSON) behind the
    scheduler: every episode annotated, rows valid, and the engine saw multi-conversation batches."""
    import torch

    from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        vlm = VlmConfig(backend="transformers", model_id=str(tiny_qwen_cached("qwen2_5_vl")), max_new_tokens=1024,
                        batch_size=8)
        config = AnnotateConfig(root=eight_episodes, out=tmp_path / "out",
                                plan=PlanConfig(n_task_rephrasings=1, min_subtask_seconds=0.3,
                                                subtask_describe_first=False),
                                interjections=InterjectionsConfig(interjection_min_t=0.1))
        scheduler = wrap_in_process(make_backend(vlm), max_wait_s=NEVER_S)  # no timer: deterministic batches
        try:
            result = run_annotation(config, vlm, vlm=scheduler)
        finally:
            scheduler.close()
    finally:
        torch.set_num_threads(threads)
    assert result.failures == {} and result.validation.ok, (result.failures, result.validation.format())
    assert result.batches.mean >= 4, result.batches.summary()
    assert max(result.batches.sizes) <= 8
