"""An in-process backend from `make_backend` shared by many coroutines and threads (the tiny transformers model).

What any asyncio user does: `asyncio.gather` of `agenerate` calls on one backend, or threads calling `generate`.
The engine must never be entered by two threads at once, every caller gets the answer to its own conversation,
and concurrent callers share engine batches (one call of 8 costs about what a call of 1 does). The same on the
real vLLM CPU engine: tests/vllm_tier/test_vllm_concurrency.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import VlmConfig, estimate_max_tokens, make_backend
from lerobot_keyframes.vlm.batching import BatchingScheduler, wrap_in_process

SCHEMA = {"type": "object", "properties": {"done": {"type": "boolean"}}, "required": ["done"],
          "additionalProperties": False}


def question(k: int) -> list[dict[str, Any]]:
    """Conversation k: its prompt is longer than conversation k-1's, so an answer shows whose it is."""
    return [{"role": "user", "content": [{"type": "text", "text": f"Question {k}: " + "what happens " * (k + 1)}]}]


class ModelSpy:
    """Records what enters the real model's `generate`: rows per call, the threads, overlapping entries."""

    def __init__(self, model: Any) -> None:
        self.sizes: list[int] = []
        self.threads: set[int] = set()
        self.overlaps = 0
        self._inside = 0
        self._lock = threading.Lock()
        self._model, self._generate = model, model.generate
        model.generate = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._inside += 1
            self.overlaps += self._inside > 1
            self.threads.add(threading.get_ident())
            self.sizes.append(int(kwargs["input_ids"].shape[0]))
        try:
            return self._generate(*args, **kwargs)
        finally:
            with self._lock:
                self._inside -= 1

    def restore(self) -> None:
        self._model.generate = self._generate


@pytest.fixture(scope="module")
def backend() -> Iterator[Any]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: intra-op threads only slow a shared machine down
    backend = make_backend(VlmConfig(model_id=str(tiny_qwen_cached("qwen2_5_vl")), max_new_tokens=estimate_max_tokens(SCHEMA),
                                       batch_size=8))
    try:
        yield backend
    finally:
        backend.close()
        torch.set_num_threads(threads)


@pytest.fixture
def spy(backend: Any) -> Iterator[ModelSpy]:
    spy = ModelSpy(backend.loaded.model)
    yield spy
    spy.restore()


def prompt_tokens(backend: Any, conversation: list[dict[str, Any]]) -> int:
    """The prompt length of a conversation alone (the processor only, no generation)."""
    inputs = backend._processor_inputs(backend.loaded, [conversation])
    return int(inputs["attention_mask"].sum())


def test_agenerate_from_many_coroutines_shares_engine_batches_on_one_thread(backend: Any, spy: ModelSpy) -> None:
    expected = [prompt_tokens(backend, question(k)) for k in range(16)]
    assert len(set(expected)) == 16

    async def main() -> list[list[Any]]:
        async def caller(k: int) -> list[Any]:
            return [(await backend.agenerate([question(k)], SCHEMA))[0] for _ in range(3)]

        return list(await asyncio.gather(*(caller(k) for k in range(16))))

    answers = asyncio.run(main())
    for k, results in enumerate(answers):
        assert all(r.ok and isinstance(r.parsed["done"], bool) for r in results), [r.failure for r in results]
        assert [r.prompt_tokens for r in results] == [expected[k]] * 3  # its own conversation's answer, each time
    assert sum(spy.sizes) == 48 and max(spy.sizes) == 8, spy.sizes  # --vlm.batch_size 8 per engine call
    assert spy.sizes[0] == 8  # 16 callers queued before the first call: a full batch, not a batch of 1
    assert spy.overlaps == 0 and len(spy.threads) == 1, (spy.overlaps, len(spy.threads))
    assert backend.batch_stats.conversations == 48


def test_generate_from_many_threads_and_loops_enters_the_engine_one_call_at_a_time(backend: Any,
                                                                                   spy: ModelSpy) -> None:
    expected = [prompt_tokens(backend, question(k)) for k in range(12)]
    got: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def sync_caller(k: int) -> None:
        start.wait()
        got[k] = [backend.generate([question(k)], SCHEMA)[0].prompt_tokens for _ in range(2)]

    def loop_caller(first: int) -> None:  # a thread with its own event loop, as a web server's worker has
        async def main() -> list[list[Any]]:
            return list(await asyncio.gather(*(backend.agenerate([question(k)], SCHEMA)
                                               for k in range(first, first + 2))))

        start.wait()
        for k, (result,) in zip(range(first, first + 2), asyncio.run(main())):
            got[k] = [result.prompt_tokens]

    def guarded(target: Any, arg: int) -> None:
        try:
            target(arg)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(sync_caller, k)) for k in range(4)]
    threads += [threading.Thread(target=guarded, args=(loop_caller, first)) for first in range(4, 12, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert got == {k: [expected[k]] * (2 if k < 4 else 1) for k in range(12)}
    assert spy.overlaps == 0 and len(spy.threads) == 1, (spy.overlaps, len(spy.threads))
    assert sum(spy.sizes) == 16


def test_annotates_scheduler_drives_the_engine_directly(backend: Any, spy: ModelSpy) -> None:
    """`annotate` puts its own `BatchingScheduler` in front of a given backend: that one batches, straight into
    the engine, never through the backend's scheduler as well (one engine thread, the same batches)."""
    outer = wrap_in_process(backend)
    assert isinstance(outer, BatchingScheduler) and outer.vlm is backend
    before = backend.batch_stats.calls

    async def main() -> list[Any]:
        async def one(k: int) -> Any:
            async with outer.caller():
                return (await outer.agenerate([question(k)], SCHEMA))[0]

        return list(await asyncio.gather(*(one(k) for k in range(6))))

    assert all(r.ok for r in asyncio.run(main()))
    outer.shutdown()
    assert spy.sizes == [6] and outer.stats.sizes == {6: 1}  # every caller waiting: one batch of all six
    assert backend.batch_stats.calls == before  # the backend's own scheduler saw nothing


def test_a_closed_backend_loads_again_and_pickles_as_its_configuration(backend: Any) -> None:
    import pickle

    clone = pickle.loads(pickle.dumps(backend))
    assert len(pickle.dumps(backend)) < 4096
    (first,) = clone.generate([question(1)], SCHEMA)
    clone.close()
    clone.close()  # idempotent
    (again,) = asyncio.run(clone.agenerate([question(1)], SCHEMA))
    assert first.ok and again.ok and again.prompt_tokens == first.prompt_tokens
