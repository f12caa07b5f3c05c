"""The retry home (vlm/retry.py): the policy's numbers, and what a real HTTP client does under it.

Requests go to FakeOpenAIServer, a real local HTTP server scripted to fail; attempts are counted on the
server side, so a client that retries too often, too little or on the wrong errors fails these tests.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer
from lerobot_keyframes.vlm import FailureKind, VlmConfig, VlmRequestError, make_backend
from lerobot_keyframes.vlm.retry import RETRYABLE_STATUS, RetryPolicy, TruncationRetry
from lerobot_keyframes.vlm.types import RawOutput

SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 1000}, "ok": {"type": "boolean"}},
    "required": ["id", "ok"],
    "additionalProperties": False,
}


def conv(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


def client(server: FakeOpenAIServer, **kw: Any):
    cfg: dict[str, Any] = dict(backend="openai", model_id="fake-model", api_base=server.api_base, max_retries=3,
                               retry_backoff=0.01, retry_backoff_max=0.05, request_timeout=5.0)
    cfg.update(kw)
    return make_backend(VlmConfig(**cfg))


def generate(vlm: Any, path: str, conversations: list, schema: Any = SCHEMA, **kw: Any) -> list:
    """The same request through the sync or the async entry point."""
    if path == "sync":
        return vlm.generate(conversations, schema, **kw)

    async def run() -> list:
        try:
            return await vlm.agenerate(conversations, schema, **kw)
        finally:
            await vlm.aclose()

    return asyncio.run(run())


# -- the policy's numbers ------------------------------------------------------------------------------
def test_backoff_doubles_per_retry_within_equal_jitter_and_caps() -> None:
    policy = RetryPolicy(max_retries=6, backoff=0.5, backoff_max=4.0)
    rng = random.Random(0)
    for retry in range(7):
        ceiling = min(4.0, 0.5 * 2**retry)
        delays = [policy.delay(retry, rng=rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling, (retry, min(delays), max(delays))
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not a constant
    assert policy.attempts == 7


def test_retry_after_lengthens_the_wait_but_never_past_the_cap() -> None:
    policy = RetryPolicy(max_retries=3, backoff=0.1, backoff_max=2.0)
    assert 1.5 == policy.delay(0, retry_after=1.5)
    assert 2.0 == policy.delay(0, retry_after=60.0)
    assert policy.delay(0, retry_after=0.0) <= 0.1


def test_which_statuses_are_retried() -> None:
    policy = RetryPolicy()
    assert all(policy.retries_status(s) for s in (408, 409, 425, 429, 500, 502, 503, 504))
    assert not any(policy.retries_status(s) for s in (400, 401, 403, 404, 413, 422))
    assert RETRYABLE_STATUS == policy.retryable_status
    with pytest.raises(ValueError, match="max_retries must be >= 0"):
        RetryPolicy(max_retries=-1)


def test_policies_read_their_flags() -> None:
    cfg = VlmConfig(max_retries=2, retry_backoff=0.25, retry_backoff_max=3.0, max_new_tokens=100,
                    truncation_retry_factor=3.0, truncation_retry_max_tokens=250)
    assert RetryPolicy.from_config(cfg) == RetryPolicy(2, 0.25, 3.0)
    truncation = TruncationRetry.from_config(cfg)
    assert truncation.budget == 250 and truncation.enabled  # 300 capped at 250
    assert not TruncationRetry(100, factor=1.0).enabled and TruncationRetry(100, factor=1.0).budget == 100
    assert not TruncationRetry(100, factor=4.0, max_tokens=50).enabled  # a cap under the budget: no retry


def test_truncation_retry_picks_truncated_answers_only() -> None:
    raws = [RawOutput("a", "stop"), RawOutput("b", "length"), RawOutput("", "length", error=OSError("down")),
            RawOutput("d", "length")]
    assert TruncationRetry(64).indices(raws) == [1, 3]
    assert TruncationRetry(64, factor=1.0).indices(raws) == []


# -- a real HTTP client under the policy ---------------------------------------------------------------
@pytest.mark.parametrize("path", ["sync", "async"])
def test_each_failed_attempt_counts_until_max_retries(path: str) -> None:
    with FakeOpenAIServer() as server:
        vlm = client(server, max_retries=2)
        results = generate(vlm, path, [conv("id=1 fail500=2"), conv("id=2 fail500=99")], raise_errors=False)
        assert results[0].ok and results[0].parsed == {"id": 1, "ok": True}
        assert server.stats.attempts["1"] == 3 and server.stats.attempts["2"] == 3
        failure = results[1]
        assert failure.failure.kind is FailureKind.REQUEST_FAILED and failure.finish_reason == "error"
        assert isinstance(failure.error, VlmRequestError) and failure.error.attempts == 3
        assert failure.error.status == 500
        assert "request 1 for model 'fake-model' failed after 3 attempt(s)" in str(failure.error)
        assert "HTTP 500" in failure.failure.message


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_non_retryable_status_ends_retrying_and_is_the_error_reported(path: str) -> None:
    statuses = {1: 503, 2: 429, 3: 422}  # two that may pass, then one that will not

    def responder(request: dict[str, Any], attempt: int) -> Any:
        return statuses[attempt], {"error": {"message": f"scripted {statuses[attempt]} on attempt {attempt}"}}

    with FakeOpenAIServer(responder=responder) as server:
        vlm = client(server, max_retries=6)
        with pytest.raises(VlmRequestError) as info:
            generate(vlm, path, [conv("id=7")])
        assert server.stats.requests == 3  # 6 retries allowed, but a 422 will not pass on a 4th try
        err = info.value
        assert err.status == 422 and err.attempts == 3 and err.url == server.api_base.rstrip("/")
        assert "failed after 3 attempt(s)" in str(err) and "HTTP 422" in str(err)
        assert "scripted 422 on attempt 3" in str(err)


def test_no_retries_means_one_attempt() -> None:
    with FakeOpenAIServer() as server:
        vlm = client(server, max_retries=0)
        with pytest.raises(VlmRequestError, match=r"after 1 attempt\(s\).*HTTP 429"):
            vlm.generate([conv("id=3 fail429=1")], SCHEMA)
        assert server.stats.attempts["3"] == 1


def test_a_refused_optional_field_uses_up_no_retry() -> None:
    with FakeOpenAIServer(reject_response_format=True) as server:
        vlm = client(server, max_retries=0)
        (result,) = vlm.generate([conv("id=4")], SCHEMA)
        # the schema request was refused, then asked without response_format: two requests, no retry spent
        assert result.ok and result.parsed == {"id": 4, "ok": True} and not result.schema_enforced
        assert server.stats.requests == 2
        assert "response_format" in server.stats.bodies[0] and "response_format" not in server.stats.bodies[1]


@pytest.mark.parametrize("path", ["sync", "async"])
def test_truncated_answers_are_asked_again_once_on_both_paths(path: str) -> None:
    with FakeOpenAIServer() as server:
        vlm = client(server, max_new_tokens=40, truncation_retry_factor=2.5)
        results = generate(vlm, path, [conv("id=1 short=90"), conv("id=2 short=500"), conv("id=3")])
        assert [r.attempts for r in results] == [2, 2, 1]
        assert results[0].ok and results[2].ok
        assert results[1].failure.kind is FailureKind.TRUNCATED
        assert "still truncated after 2 attempt(s) (max_new_tokens 40 then 100)" in results[1].failure.message
        budgets = {key: sorted(b["max_tokens"] for b in server.stats.bodies
                               if f"id={key} " in b["messages"][-1]["content"][0]["text"] + " ")
                   for key in ("1", "2", "3")}
        assert budgets == {"1": [40, 100], "2": [40, 100], "3": [40]}
