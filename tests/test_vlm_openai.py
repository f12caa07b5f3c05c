"""openai backend against a real local HTTP server (127.0.0.1) that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import json
import socket
import sys

import pytest
from PIL import Image

from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer
from lerobot_keyframes.vlm import (
    FailureKind,
    MissingExtraError,
    VlmConfig,
    VlmRequestError,
    VlmServeError,
    make_backend,
)

SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 100000}, "ok": {"type": "boolean"}},
    "required": ["id", "ok"],
    "additionalProperties": False,
}


def conv(text: str, image: bool = False) -> list[dict]:
    content: list[dict] = [{"type": "text", "text": text}]
    if image:
        content.insert(0, {"type": "image", "image": Image.new("RGB", (32, 24), (10, 200, 30))})
    return [{"role": "user", "content": content}]


def backend_for(server: FakeOpenAIServer, **kw: object):
    cfg = dict(
        backend="openai",
        model_id="fake-model",
        api_base=server.api_base,
        max_new_tokens=64,
        client_concurrency=4,
        request_timeout=5.0,
        max_retries=3,
        retry_backoff=0.02,
        retry_backoff_max=0.2,
    )
    cfg.update(kw)
    return make_backend(VlmConfig(**cfg))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_concurrency_cap_order_and_request_shape() -> None:
    with FakeOpenAIServer(latency=0.03) as server:
        backend = backend_for(
            server,
            client_concurrency=4,
            chat_template_kwargs={"enable_thinking": False},
            max_pixels=200704,
            seed=3,
        )
        convs = [conv(f"id={i}", image=(i % 5 == 0)) for i in range(40)]
        results = backend.generate(convs, SCHEMA)
        assert [r.parsed for r in results] == [{"id": i, "ok": True} for i in range(40)]
        assert all(r.ok and r.schema_enforced and r.finish_reason == "stop" for r in results)
        assert server.stats.max_in_flight == 4  # the cap is reached and never exceeded
        body = server.stats.bodies[0]
        assert body["model"] == "fake-model" and body["max_tokens"] == 64 and body["seed"] == 3
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == SCHEMA
        assert body["chat_template_kwargs"] == {"enable_thinking": False}
        assert body["mm_processor_kwargs"] == {"max_pixels": 200704}
        with_image = next(b for b in server.stats.bodies if len(b["messages"][0]["content"]) == 2)
        assert with_image["messages"][0]["content"][0]["image_url"]["url"].startswith(
            "data:image/jpeg;base64,"
        )
        assert "media_io_kwargs" not in body  # only requests with a video say when its frames were taken


def test_video_requests_say_when_their_frames_were_taken() -> None:
    from PIL import Image

    from lerobot_keyframes.vlm.messages import video_server_metadata

    video = {"type": "video", "video": [Image.new("RGB", (32, 32), (9 * i, 0, 0)) for i in range(4)],
             "timestamps": [2.0, 2.5, 3.0, 3.5]}
    with FakeOpenAIServer() as server:
        result = backend_for(server).generate([[{"role": "user", "content": [video, {"type": "text", "text": "id=7"}]}]],
                                              SCHEMA)[0]
        assert result.ok, result.failure
        body = server.stats.bodies[0]
        assert body["messages"][0]["content"][0]["video_url"]["url"].startswith("data:video/jpeg;base64,")
        assert body["media_io_kwargs"] == {"video": video_server_metadata(video)}
        md = body["media_io_kwargs"]["video"]
        assert [i / md["fps"] for i in md["frames_indices"]] == pytest.approx([2.0, 2.5, 3.0, 3.5], abs=1e-3)


def test_cap_holds_across_concurrent_agenerate_calls() -> None:
    with FakeOpenAIServer(latency=0.02) as server:
        backend = backend_for(server, client_concurrency=3)

        async def main() -> list:
            batches = [[conv(f"id={b * 100 + i}") for i in range(10)] for b in range(4)]
            return await asyncio.gather(*(backend.agenerate(b, SCHEMA) for b in batches))

        out = asyncio.run(main())
        assert [[r.parsed["id"] for r in batch] for batch in out] == [
            [b * 100 + i for i in range(10)] for b in range(4)
        ]
        assert server.stats.max_in_flight == 3


def test_calls_in_one_event_loop_reuse_their_connections() -> None:
    with FakeOpenAIServer(latency=0.01) as server:
        backend = backend_for(server, client_concurrency=2)

        async def main() -> tuple[list, int]:
            out = [await backend.agenerate([conv(f"id={b * 10 + i}") for i in range(2)], SCHEMA) for b in range(6)]
            held = len(backend._loop_clients)
            await backend.aclose()
            return out, held

        out, held = asyncio.run(main())
        assert [[r.parsed["id"] for r in batch] for batch in out] == [[b * 10, b * 10 + 1] for b in range(6)]
        assert held == 1 and len(backend._loop_clients) == 0  # kept during the loop, released by aclose
        assert server.stats.requests == 12
        assert server.stats.connections <= 2  # one per concurrent slot, not two per call (was 12)

        backend.generate([conv("id=1")], SCHEMA)  # sync calls: each its own loop, nothing left behind
        backend.generate([conv("id=2")], SCHEMA)
        assert len(backend._loop_clients) == 0 and server.stats.connections <= 4


def test_cap_holds_across_threads_each_running_sync_generate() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with FakeOpenAIServer(latency=0.02) as server:
        backend = backend_for(server, client_concurrency=5)
        with ThreadPoolExecutor(4) as pool:
            futures = [
                pool.submit(backend.generate, [conv(f"id={t * 100 + i}") for i in range(12)], SCHEMA)
                for t in range(4)
            ]
            out = [f.result() for f in futures]
        assert [[r.parsed["id"] for r in batch] for batch in out] == [
            [t * 100 + i for i in range(12)] for t in range(4)
        ]
        assert server.stats.max_in_flight == 5  # one cap for the process, not one per event loop


def test_retries_429_and_500_with_exponential_backoff() -> None:
    with FakeOpenAIServer() as server:
        backend = backend_for(server, max_retries=3, retry_backoff=0.05, retry_backoff_max=1.0)
        results = backend.generate([conv("id=1 fail429=2"), conv("id=2 fail500=3"), conv("id=3")], SCHEMA)
        assert [r.parsed["id"] for r in results] == [1, 2, 3]
        assert (
            server.stats.attempts["1"] == 3
            and server.stats.attempts["2"] == 4
            and server.stats.attempts["3"] == 1
        )
        gaps = [b - a for a, b in zip(server.stats.arrivals["2"], server.stats.arrivals["2"][1:])]
        # equal jitter: the k-th wait is at least half of retry_backoff * 2**k
        assert all(gap >= 0.05 * 2**k / 2 for k, gap in enumerate(gaps)), gaps


def test_persistent_errors_are_clear_final_errors() -> None:
    with FakeOpenAIServer() as server:
        backend = backend_for(server, max_retries=2)
        with pytest.raises(VlmRequestError) as info:
            backend.generate([conv("id=1"), conv("id=2 fail500=99")], SCHEMA)
        err = info.value
        assert err.status == 500 and err.attempts == 3
        assert "request 1" in str(err) and "HTTP 500" in str(err) and "after 3 attempt(s)" in str(err)

        results = backend.generate([conv("id=5"), conv("id=6 fail500=99")], SCHEMA, raise_errors=False)
        assert results[0].ok and results[0].parsed == {"id": 5, "ok": True}
        assert results[1].failure.kind is FailureKind.REQUEST_FAILED and results[1].finish_reason == "error"
        assert isinstance(results[1].error, VlmRequestError)


def test_non_retryable_status_fails_at_once() -> None:
    with FakeOpenAIServer() as server:
        backend = backend_for(server, max_retries=4)
        with pytest.raises(VlmRequestError, match="HTTP 400"):
            backend.generate([conv("id=9 fail400=99")], SCHEMA)
        assert server.stats.attempts["9"] == 1


def test_timeouts_are_retried_then_reported() -> None:
    with FakeOpenAIServer(hang_seconds=3.0) as server:
        backend = backend_for(server, request_timeout=0.3, max_retries=2)
        ok = backend.generate([conv("id=1 hang=1")], SCHEMA)
        assert ok[0].parsed == {"id": 1, "ok": True} and server.stats.attempts["1"] == 2
        with pytest.raises(VlmRequestError, match="timed out after 0.3 s"):
            backend.generate([conv("id=2 hang=99")], SCHEMA)
        assert server.stats.attempts["2"] == 3


def test_garbage_answers_are_retried_then_reported() -> None:
    with FakeOpenAIServer() as server:
        backend = backend_for(server, max_retries=2)
        assert backend.generate([conv("id=4 garbage=2")], SCHEMA)[0].parsed == {"id": 4, "ok": True}
        with pytest.raises(VlmRequestError, match="unreadable answer"):
            backend.generate([conv("id=5 garbage=99")], SCHEMA)


def test_connection_errors_are_retried_then_reported() -> None:
    port = free_port()
    backend = make_backend(
        VlmConfig(
            backend="openai",
            model_id="m",
            api_base=f"http://127.0.0.1:{port}/v1",
            max_retries=2,
            retry_backoff=0.01,
        )
    )
    with pytest.raises(VlmRequestError, match="connection failed") as info:
        backend.generate([conv("hello")])
    assert info.value.attempts == 3


def test_round_robin_over_api_bases() -> None:
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        backend = make_backend(
            VlmConfig(
                backend="openai", model_id="fake-model", api_base=f"{a.api_base}, {b.api_base}", max_retries=0
            )
        )
        results = backend.generate([conv(f"id={i}") for i in range(10)], SCHEMA)
        assert all(r.ok for r in results)
        assert a.stats.requests == 5 and b.stats.requests == 5


def test_retry_moves_to_the_next_server() -> None:
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        backend = make_backend(
            VlmConfig(
                backend="openai",
                model_id="fake-model",
                api_base=f"{a.api_base},{b.api_base}",
                retry_backoff=0.01,
            )
        )
        # each server fails its first attempt of a key: a (fail), b (fail), a (ok)
        assert backend.generate([conv("id=1 fail500=1")], SCHEMA)[0].ok
        assert a.stats.requests == 2 and b.stats.requests == 1


def test_schema_rejected_falls_back_to_tolerant_extraction() -> None:
    with FakeOpenAIServer(reject_response_format=True) as server:
        backend = backend_for(server)
        results = backend.generate([conv("id=11 prose"), conv("id=12 prose")], SCHEMA)
        assert [r.parsed for r in results] == [{"id": 11, "ok": True}, {"id": 12, "ok": True}]
        assert not results[0].schema_enforced
        assert "```json" in results[0].text  # raw text kept
        strict = backend_for(server, structured_output="schema")
        with pytest.raises(VlmRequestError, match="HTTP 400"):
            strict.generate([conv("id=13")], SCHEMA)


def test_truncation_is_retried_once_with_a_larger_budget() -> None:
    with FakeOpenAIServer() as server:
        backend = backend_for(server, max_new_tokens=50, truncation_retry_factor=2.0)
        results = backend.generate([conv("id=1 short=80"), conv("id=2 short=1000"), conv("id=3")], SCHEMA)
        assert results[0].ok and results[0].attempts == 2 and results[0].parsed == {"id": 1, "ok": True}
        assert results[1].failure.kind is FailureKind.TRUNCATED and results[1].finish_reason == "length"
        assert results[1].attempts == 2 and results[1].text  # the raw text is kept for the log
        assert "max_new_tokens" in results[1].failure.message
        assert results[2].attempts == 1
        budgets = sorted(b["max_tokens"] for b in server.stats.bodies if "id=1" in json.dumps(b))
        assert budgets == [50, 100]


def test_structured_output_off_uses_the_extractor() -> None:
    with FakeOpenAIServer() as server:
        backend = backend_for(server, structured_output="off")
        result = backend.generate([conv("id=21 prose")], SCHEMA)[0]
        assert result.parsed == {"id": 21, "ok": True} and not result.schema_enforced
        assert "response_format" not in server.stats.bodies[0]


def test_sync_generate_inside_a_running_event_loop() -> None:
    with FakeOpenAIServer() as server:
        backend = backend_for(server)

        async def main() -> list:
            return backend.generate([conv("id=1")], SCHEMA)  # a sync call from async code must not deadlock

        assert asyncio.run(main())[0].parsed == {"id": 1, "ok": True}


def test_free_text_without_schema() -> None:
    with FakeOpenAIServer() as server:
        result = backend_for(server).generate([[{"role": "user", "content": "id=3"}]])[0]
        assert result.ok and result.parsed is None and result.text == '{"id": 3, "ok": true}'
        assert result.prompt_tokens == 10 and result.completion_tokens


def test_auto_serve_never_reuses_a_server_of_another_model() -> None:
    with FakeOpenAIServer(model="some-other-model") as server:
        with pytest.raises(VlmServeError, match="not 'wanted-model'"):
            make_backend(
                VlmConfig(
                    backend="openai", model_id="wanted-model", api_base=server.api_base, auto_serve=True
                )
            )


def test_auto_serve_reuses_a_server_of_the_same_model() -> None:
    with FakeOpenAIServer(model="wanted-model") as server:
        backend = make_backend(
            VlmConfig(backend="openai", model_id="wanted-model", api_base=server.api_base, auto_serve=True)
        )
        assert backend.generate([conv("id=1")], SCHEMA)[0].ok
        backend.close()  # a reused server is not ours: close() leaves it running
        assert backend_for(server, model_id="wanted-model").generate([conv("id=2")], SCHEMA)[0].ok


def test_missing_openai_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(MissingExtraError) as info:
        make_backend(VlmConfig(backend="openai"))
    assert "pip install 'lerobot_keyframes[openai]'" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_missing_vllm_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'lerobot_keyframes\[vllm\]'"):
        make_backend(VlmConfig(backend="vllm"))


def test_missing_transformers_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xgrammar", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'lerobot_keyframes\[transformers\]'"):
        make_backend(VlmConfig(backend="transformers"))


def test_a_server_refusing_media_io_kwargs_still_answers_video_requests(caplog: pytest.LogCaptureFixture) -> None:
    from PIL import Image

    video = {"type": "video", "video": [Image.new("RGB", (32, 32), (0, 0, 0))] * 2, "timestamps": [0.0, 0.5]}
    convs = [[{"role": "user", "content": [video, {"type": "text", "text": f"id={i}"}]}] for i in range(3)]
    with FakeOpenAIServer(reject_media_io_kwargs=True) as server, caplog.at_level("WARNING"):
        results = backend_for(server, client_concurrency=1).generate(convs, SCHEMA)
        assert [r.parsed for r in results] == [{"id": i, "ok": True} for i in range(3)]
        assert all(r.attempts == 1 for r in results)  # the refusal does not use up a retry
        sent = [("media_io_kwargs" in b) for b in server.stats.bodies]
        assert sent == [True, False, False, False]  # asked once, then never again on that server
    assert caplog.text.count("--trust-request-mm-kwargs (auto_serve does)") == 1


def test_videos_of_different_timing_in_one_request_fail_before_anything_is_sent() -> None:
    from PIL import Image

    frames = [Image.new("RGB", (32, 32), (0, 0, 0))] * 2
    a = {"type": "video", "video": frames, "timestamps": [0.0, 0.5]}
    b = {"type": "video", "video": frames, "timestamps": [3.0, 4.0]}
    ok = [{"role": "user", "content": [a, {"type": "text", "text": "id=1"}]}]
    with FakeOpenAIServer() as server:
        with pytest.raises(ValueError, match="separate requests"):
            backend_for(server).generate([ok, [{"role": "user", "content": [a, b]}]], SCHEMA)
        assert server.stats.bodies == []


def test_reasoning_effort_is_a_top_level_field_of_each_request() -> None:
    """lerobot-annotate 0.6.1 passes --vlm.reasoning_effort as `reasoning_effort` of chat.completions.create."""
    from lerobot_keyframes.vlm.config import unapplied_vlm_settings

    with FakeOpenAIServer() as server:
        assert backend_for(server, reasoning_effort="low").generate([conv("id=1"), conv("id=2")], SCHEMA)[0].ok
        assert [b.get("reasoning_effort") for b in server.stats.bodies] == ["low", "low"]
        assert backend_for(server).generate([conv("id=3")], SCHEMA)[0].ok
        assert "reasoning_effort" not in server.stats.bodies[-1]  # unset: not sent, as in lerobot
    assert unapplied_vlm_settings(VlmConfig(backend="openai", reasoning_effort="high")) == []
    (msg,) = unapplied_vlm_settings(VlmConfig(backend="transformers", reasoning_effort="high"))
    assert "OpenAI-compatible servers only" in msg
    with pytest.raises(ValueError, match="reasoning_effort must be one of"):
        VlmConfig(reasoning_effort="extreme")


def test_parallel_servers_are_planned_on_consecutive_ports_and_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """lerobot-annotate 0.6.1: server i on serve_port + i, pinned to GPU i % num_gpus (0: one each)."""
    from lerobot_keyframes.vlm.serve import ServerPool

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cfg = VlmConfig(backend="openai", model_id="m", api_base="http://127.0.0.1:8100/v1", auto_serve=True,
                    parallel_servers=3, num_gpus=2)
    pool = ServerPool(cfg)
    assert pool.api_base == "http://127.0.0.1:8100/v1,http://127.0.0.1:8101/v1,http://127.0.0.1:8102/v1"
    for i, server in enumerate(pool.servers):
        cmd = server.command()
        assert cmd[cmd.index("--port") + 1] == str(8100 + i) and cmd[cmd.index("--model") + 1] == "m"
        assert cmd[cmd.index("--tensor-parallel-size") + 1] == "1"
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in pool.servers] == ["0", "1", "0"]
    two_each = ServerPool(cfg.replace(parallel_servers=2, num_gpus=0, tensor_parallel_size=2))
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in two_each.servers] == ["0,1", "2,3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in ServerPool(cfg.replace(num_gpus=0, parallel_servers=2)).servers] \
        == ["4", "6"]
    with pytest.raises(VlmServeError, match="consecutive ports from one --vlm.api_base"):
        ServerPool(cfg.replace(api_base="http://a:1/v1,http://b:2/v1"))


def test_auto_serve_with_parallel_servers_round_robins_over_all_of_them() -> None:
    """Servers of the model already up on both ports are reused (no vLLM here); requests go to both."""
    for _ in range(20):  # two consecutive free ports
        first = FakeOpenAIServer(model="wanted-model").start()
        try:
            second = FakeOpenAIServer(model="wanted-model", port=first.port + 1).start()
            break
        except OSError:
            first.stop()
    else:
        pytest.skip("no two consecutive free ports")
    try:
        backend = make_backend(VlmConfig(backend="openai", model_id="wanted-model", api_base=first.api_base,
                                         auto_serve=True, parallel_servers=2, max_retries=0))
        assert backend.config.api_bases == [first.api_base, second.api_base]
        assert all(r.ok for r in backend.generate([conv(f"id={i}") for i in range(6)], SCHEMA))
        assert len(first.stats.bodies) == len(second.stats.bodies) == 3
        backend.close()  # reused servers are not ours: both keep running
        assert backend_for(second, model_id="wanted-model").generate([conv("id=9")], SCHEMA)[0].ok
    finally:
        first.stop()
        second.stop()
