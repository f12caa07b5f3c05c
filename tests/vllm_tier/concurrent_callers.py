"""Child process of test_vllm_concurrency.py: one `make_backend(vllm)` engine driven by many coroutines and threads.

Run as a script (`python concurrent_callers.py OUT.json`), so an engine that aborts the process (two threads
inside one `vllm.LLM`: `corrupted double-linked list`, SIGABRT) fails the test instead of killing pytest.
Writes what the engine saw (calls, rows per call, threads, overlapping entries) and every caller's answers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

from vllm_tier_common import ENGINE, SCHEMA, batch

from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import VlmConfig, estimate_max_tokens, make_backend


class EngineSpy:
    """Wraps the engine's `chat`/`generate`: rows per call, entering threads, overlapping entries."""

    def __init__(self, engine: Any) -> None:
        self.sizes: list[int] = []
        self.threads: set[int] = set()
        self.overlaps = 0
        self._inside = 0
        self._lock = threading.Lock()
        for name in ("chat", "generate"):
            setattr(engine, name, self._wrap(getattr(engine, name)))

    def _wrap(self, method: Any) -> Any:
        def spied(prompts: list[Any], *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._inside += 1
                self.overlaps += self._inside > 1
                self.threads.add(threading.get_ident())
                self.sizes.append(len(prompts))
            try:
                return method(prompts, *args, **kwargs)
            finally:
                with self._lock:
                    self._inside -= 1

        return spied


def answer(result: Any) -> list[Any]:
    return [result.ok, result.prompt_tokens]


def main(out_path: str) -> None:
    model = tiny_qwen_cached("qwen2_5_vl", head_dim=64)
    backend = make_backend(VlmConfig(backend="vllm", model_id=str(model), max_new_tokens=estimate_max_tokens(SCHEMA),
                                     seed=0, **ENGINE))
    convs = batch(8)
    alone = [answer(r) for r in backend.generate(convs, SCHEMA)]  # the reference (and the engine's start)
    spy = EngineSpy(backend.engine)

    async def coroutines() -> list[list[list[Any]]]:  # 16 callers x 2 rounds, as `asyncio.gather` users do
        async def caller(k: int) -> list[list[Any]]:
            return [answer((await backend.agenerate([convs[k % 8]], SCHEMA))[0]) for _ in range(2)]

        return list(await asyncio.gather(*(caller(k) for k in range(16))))

    from_coroutines = asyncio.run(coroutines())
    phase1 = list(spy.sizes)

    from_threads: dict[int, list[Any]] = {}
    start = threading.Barrier(6)

    def sync_caller(k: int) -> None:
        start.wait()
        from_threads[k] = answer(backend.generate([convs[k]], SCHEMA)[0])

    def loop_caller(k: int) -> None:  # a thread running its own event loop
        start.wait()
        results = asyncio.run(asyncio.wait_for(backend.agenerate([convs[k], convs[k + 1]], SCHEMA), 300))
        from_threads[k], from_threads[k + 1] = answer(results[0]), answer(results[1])

    threads = [threading.Thread(target=sync_caller, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=loop_caller, args=(k,)) for k in (4, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = {
        "alone": alone, "from_coroutines": from_coroutines, "from_threads": [from_threads[k] for k in range(8)],
        "coroutine_call_sizes": phase1, "thread_call_sizes": spy.sizes[len(phase1):],
        "engine_threads": len(spy.threads), "overlaps": spy.overlaps, "batch_stats": backend.batch_stats.summary(),
    }
    backend.close()
    with open(out_path, "w") as fh:
        json.dump(report, fh)


if __name__ == "__main__":
    main(sys.argv[1])
