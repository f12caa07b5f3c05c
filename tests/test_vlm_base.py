"""BaseBackend: the one plan (check, generate, retry truncated answers, parse) that sync and async engines
share, and pickling as the arguments that built an object (RebuiltOnUnpickle).

The engines here implement BaseBackend's engine hooks and record every call, so the tests see exactly what
the shared driver asked of an engine; real engines run the same driver in test_vlm_transformers.py
(tiny Qwen-VL models) and test_vlm_openai.py / test_vlm_retry.py (a real HTTP server).
"""

from __future__ import annotations

import asyncio
import pickle
import re
from collections.abc import Sequence
from typing import Any

import pytest

from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer
from lerobot_keyframes.testing.scripted import prompt_text
from lerobot_keyframes.vlm import BaseBackend, FailureKind, VlmConfig, VlmRequestError, make_backend
from lerobot_keyframes.vlm.batching import BatchingScheduler
from lerobot_keyframes.vlm.types import Conversation, JsonSchema, RawOutput

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
ID_SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}, "ok": {"type": "boolean"}},
             "required": ["id", "ok"]}


def conv(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


def engine_output(conversation: Conversation, budget: int) -> RawOutput:
    """`need=T`: the answer takes T tokens (cut at the budget); `down`: the request fails."""
    text = prompt_text(conversation)
    if "down" in text:
        return RawOutput("", "error", error=VlmRequestError(f"server down for {text!r}", status=503))
    need = int(re.search(r"need=(\d+)", text).group(1)) if "need=" in text else 1
    if budget < need:
        return RawOutput('{"n": 1', "length", prompt_tokens=5, completion_tokens=budget)
    return RawOutput(f'{{"n": {need}}}', "stop", prompt_tokens=5, completion_tokens=need)


class SyncEngine(BaseBackend):
    name = "sync-test"

    def __init__(self, config: VlmConfig) -> None:
        super().__init__(config)
        self.calls: list[list[int]] = []

    def _generate_raw(self, conversations: Sequence[Conversation], schemas: list[JsonSchema | None],
                      budgets: list[int]) -> list[RawOutput]:
        self.calls.append(list(budgets))
        return [engine_output(c, b) for c, b in zip(conversations, budgets)]


class AsyncEngine(SyncEngine):
    name = "async-test"
    is_async = True

    async def _agenerate_raw(self, conversations: Sequence[Conversation], schemas: list[JsonSchema | None],
                             budgets: list[int]) -> list[RawOutput]:
        await asyncio.sleep(0)
        return self._generate_raw(conversations, schemas, budgets)


ENGINES = {"sync": SyncEngine, "async": AsyncEngine}


def engine(kind: str, **config: Any) -> SyncEngine:
    return ENGINES[kind](VlmConfig(**{"max_new_tokens": 64, "truncation_retry_factor": 2.0, **config}))


@pytest.mark.parametrize("kind", ENGINES)
@pytest.mark.parametrize("entry", ["generate", "agenerate"])
def test_truncated_answers_are_asked_once_more_with_the_larger_budget(kind: str, entry: str) -> None:
    vlm = engine(kind)
    convs = [conv("need=3"), conv("need=100"), conv("need=1000")]
    if entry == "generate":
        results = vlm.generate(convs, SCHEMA)
    else:
        results = asyncio.run(vlm.agenerate(convs, SCHEMA))
    assert vlm.calls == [[64, 64, 64], [128, 128]]  # one call for all, one for the two truncated ones
    assert [r.attempts for r in results] == [1, 2, 2]
    assert [r.parsed for r in results[:2]] == [{"n": 3}, {"n": 100}]
    assert results[2].failure.kind is FailureKind.TRUNCATED and results[2].finish_reason == "length"
    assert "still truncated after 2 attempt(s) (max_new_tokens 64 then 128)" in results[2].failure.message
    assert results[2].text == '{"n": 1'  # the last attempt's raw text, kept for the log


@pytest.mark.parametrize("kind", ENGINES)
def test_without_a_larger_budget_nothing_is_asked_twice(kind: str) -> None:
    vlm = engine(kind, truncation_retry_factor=1.0)
    (result,) = vlm.generate([conv("need=1000")], SCHEMA)
    assert vlm.calls == [[64]] and result.attempts == 1
    assert "still truncated after 1 attempt(s) (max_new_tokens 64):" in result.failure.message
    free = engine(kind, truncation_retry_factor=1.0).generate([conv("need=1000")])  # free text: same rule
    assert free[0].failure.kind is FailureKind.TRUNCATED and "64 tokens" in free[0].failure.message


@pytest.mark.parametrize("kind", ENGINES)
def test_failed_requests_are_not_retried_for_length_and_raise_after_the_batch(kind: str) -> None:
    vlm = engine(kind)
    convs = [conv("need=1000 down a"), conv("need=3"), conv("down b")]
    with pytest.raises(VlmRequestError, match="server down for 'need=1000 down a'") as info:
        vlm.generate(convs, SCHEMA)
    assert info.value.__notes__ == ["2 of 3 requests of this batch failed"]
    assert vlm.calls == [[64, 64, 64]]  # every request attempted; a failed one is no truncation
    results = engine(kind).generate(convs, SCHEMA, raise_errors=False)
    assert [r.failure.kind if r.failure else None for r in results] == [
        FailureKind.REQUEST_FAILED, None, FailureKind.REQUEST_FAILED]
    assert results[0].finish_reason == "error" and isinstance(results[2].error, VlmRequestError)


@pytest.mark.parametrize("kind", ENGINES)
def test_a_malformed_conversation_fails_before_any_engine_call(kind: str) -> None:
    vlm = engine(kind)
    with pytest.raises(ValueError, match="conversation 1, message 0: needs a 'role'"):
        vlm.generate([conv("need=1"), [{"content": "no role"}]])
    with pytest.raises(ValueError, match="got 2 conversations but 3 schemas"):
        vlm.generate([conv("a"), conv("b")], [SCHEMA, SCHEMA, SCHEMA])
    assert vlm.calls == [] and vlm.generate([]) == []


def test_sync_and_async_engines_give_the_same_results() -> None:
    convs = [conv("need=2"), conv("need=90"), conv("need=900"), conv("down")]
    sync = engine("sync").generate(convs, SCHEMA, raise_errors=False)
    via_async = engine("async").generate(convs, SCHEMA, raise_errors=False)
    assert sync == via_async  # VlmResult equality leaves the exception object out


# -- pickling as the arguments that built it ---------------------------------------------------------
def test_a_pickled_server_client_rebuilds_its_own_clients_and_starts_no_server() -> None:
    with FakeOpenAIServer() as server:
        vlm = make_backend(VlmConfig(backend="openai", model_id="fake-model", api_base=server.api_base,
                                     client_concurrency=3, max_retries=0))
        vlm.generate([conv("id=1")], ID_SCHEMA)
        copy = pickle.loads(pickle.dumps(vlm))
        assert copy.config == vlm.config.replace(auto_serve=False)
        assert copy._limiter is not vlm._limiter and copy._server is None
        assert copy.generate([conv("id=2")], ID_SCHEMA)[0].parsed == {"id": 2, "ok": True}
        assert server.stats.requests == 2


def test_a_pickled_batching_scheduler_gets_its_own_engine_thread_and_engine() -> None:
    inner = engine("sync", batch_size=4)
    scheduler = BatchingScheduler(inner, max_batch=4, max_wait_s=0.01)
    copy = pickle.loads(pickle.dumps(scheduler))
    try:
        assert (copy.max_batch, copy.max_wait_s, copy.config) == (4, 0.01, inner.config)
        assert copy._executor is not scheduler._executor and copy.vlm is not inner
        assert copy.generate([conv("need=2")], SCHEMA)[0].parsed == {"n": 2}
        assert copy.vlm.calls == [[64]] and inner.calls == []  # the copy's engine, rebuilt from its config
    finally:
        copy.shutdown()
        scheduler.shutdown()
