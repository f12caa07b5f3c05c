"""VLM backend overhead: how much wall time our code adds around the engine, and openai-backend concurrency.

1. transformers backend, tiny Qwen2.5-VL (random weights), schema-constrained output, batches of 1, 8 and
   32 conversations with 2 images each: wall time of ``backend.generate`` split into ``model.generate``
   (engine, including the xgrammar mask), the HF processor + chat template, and the rest (our code:
   message conversion, grammar lookup, decoding, parsing, validation). Target: ours < 10 % of backend time
   (engine + processor) at batch 32.
2. openai backend against the local fake server with a fixed 50 ms latency: share of the configured
   concurrency kept busy (ideal time N * latency / concurrency over the measured wall time). Target >= 90 %.
3. the same server and backend in the annotation engine's pattern: many episodes at once in one event loop,
   each making several small ``agenerate`` calls. Baseline in the same run: the same backend with what it did
   before it kept one client per event loop: new clients for every call, closed at its end (a new TLS
   context and new connections per call).

Run: ``.venv/bin/python benchmarks/vlm_overhead.py`` (HF_HUB_OFFLINE=1; prints a markdown table).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "maxLength": 24},
        "start": {"type": "number", "minimum": 0, "maximum": 60},
        "end": {"type": "number", "minimum": 0, "maximum": 60},
        "success": {"type": "boolean"},
    },
    "required": ["label", "start", "end", "success"],
}


def transformers_overhead(batch_sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    from PIL import Image

    from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
    from lerobot_keyframes.vlm import VlmConfig, estimate_max_tokens, make_backend, make_xgrammar_safe

    schema = make_xgrammar_safe(SCHEMA)
    path = tiny_qwen_cached("qwen2_5_vl")
    backend = make_backend(
        VlmConfig(model_id=str(path), max_new_tokens=estimate_max_tokens(schema), batch_size=max(batch_sizes))
    )
    state = backend.loaded
    timers = {"generate": 0.0, "processor": 0.0}
    real_generate, real_processor = state.model.generate, state.processor.__class__.__call__

    def timed_generate(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_generate(*args, **kwargs)
        finally:
            timers["generate"] += time.perf_counter() - t0

    def timed_processor(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return real_processor(self, *args, **kwargs)
        finally:
            timers["processor"] += time.perf_counter() - t0

    state.model.generate = timed_generate
    state.processor.__class__.__call__ = timed_processor

    def conversation(i: int) -> list[dict[str, Any]]:
        images = [Image.new("RGB", (96, 72), ((37 * i) % 256, (91 * j) % 256, 128)) for j in range(2)]
        content = [
            {"type": "image", "image": im, "source": {"file": f"ep{i}.mp4", "pts": j * 0.5}}
            for j, im in enumerate(images)
        ]
        content.append({"type": "text", "text": f"Episode {i}: name the subtask shown in the two views."})
        return [{"role": "user", "content": content}]

    backend.generate([conversation(0)], schema)  # warm-up (xgrammar + torch first-call costs)
    rows = []
    try:
        for n in batch_sizes:
            convs = [conversation(i) for i in range(n)]
            runs = []
            for _ in range(repeats):
                timers.update(generate=0.0, processor=0.0)
                t0 = time.perf_counter()
                results = backend.generate(convs, schema)
                wall = time.perf_counter() - t0
                assert all(r.ok for r in results), [r.failure for r in results if not r.ok]
                ours = max(0.0, wall - timers["generate"] - timers["processor"])
                runs.append(
                    (
                        ours / (timers["generate"] + timers["processor"]),
                        wall,
                        timers["generate"],
                        timers["processor"],
                        ours,
                    )
                )
            ratio, wall, gen, proc, ours = sorted(runs)[len(runs) // 2]  # the median run by overhead share
            rows.append(
                {
                    "batch": n,
                    "wall_s": wall,
                    "generate_s": gen,
                    "processor_s": proc,
                    "ours_s": ours,
                    "ours_pct_of_backend": 100 * ratio,
                }
            )
    finally:
        state.processor.__class__.__call__ = real_processor
        del state.model.generate
    return rows


def bare_httpx_client(api_base: str, n_requests: int, concurrency: int, schema: dict[str, Any]) -> tuple[float, float]:
    """The floor: the same requests from a bare httpx client under an asyncio.Semaphore (no message
    conversion, no retries, no parsing beyond json.loads). Returns (wall s, client CPU s)."""
    import asyncio
    import importlib
    import json

    try:  # the HTTP library under the installed openai SDK (httpx, or its httpx2 successor)
        httpx = importlib.import_module("httpx2")
    except ImportError:
        httpx = importlib.import_module("httpx")

    def body(i: int) -> bytes:
        return json.dumps({
            "model": "fake-model", "messages": [{"role": "user", "content": f"id={i}"}], "max_tokens": 64,
            "temperature": 0.0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
        }).encode()

    async def run() -> tuple[float, float]:
        sem = asyncio.Semaphore(concurrency)
        headers = {"Authorization": "Bearer EMPTY", "Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as http:
            async def one(i: int) -> None:
                async with sem:
                    r = await http.post(api_base + "/chat/completions", content=body(i), headers=headers)
                r.raise_for_status()
                json.loads(r.content)["choices"][0]["message"]["content"]

            await asyncio.gather(*(one(i) for i in range(concurrency)))  # warm-up: connections
            t0, cpu0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(one(i) for i in range(n_requests)))
            return time.perf_counter() - t0, time.process_time() - cpu0

    return asyncio.run(run())


def openai_concurrency(n_requests: int, concurrency: int, latency: float, repeats: int = 3) -> dict[str, Any]:
    """The fake server runs in its own process, so its work does not compete with the client for the GIL.
    Our backend and the bare httpx floor are timed alternately against the same server; best of `repeats`."""
    import json
    import subprocess
    import sys
    import urllib.request

    from lerobot_keyframes.vlm import VlmConfig, make_backend

    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "ok": {"type": "boolean"}}}
    server = subprocess.Popen(
        [sys.executable, "-m", "lerobot_keyframes.testing.fake_openai", "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    ours: tuple[float, float] = (float("inf"), 0.0)
    floor: tuple[float, float] = (float("inf"), 0.0)
    try:
        port = int(server.stdout.readline())
        api_base = f"http://127.0.0.1:{port}/v1"
        backend = make_backend(
            VlmConfig(
                backend="openai", model_id="fake-model", api_base=api_base, client_concurrency=concurrency
            )
        )
        convs = [[{"role": "user", "content": f"id={i}"}] for i in range(n_requests)]
        backend.generate(convs[:concurrency], schema)  # warm-up: imports, first connections
        for _ in range(repeats):
            urllib.request.urlopen(urllib.request.Request(api_base + "/stats/reset", method="POST")).read()
            t0, cpu0 = time.perf_counter(), time.process_time()
            results = backend.generate(convs, schema)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            assert all(r.ok for r in results)
            stats = json.loads(urllib.request.urlopen(api_base + "/stats").read())
            if wall < ours[0]:
                ours, max_in_flight = (wall, cpu), stats["max_in_flight"]
            floor = min(floor, bare_httpx_client(api_base, n_requests, concurrency, schema))
    finally:
        server.stdin.close()
        server.wait(10)
    ideal = n_requests * latency / concurrency
    return {
        "requests": n_requests,
        "concurrency": concurrency,
        "latency_s": latency,
        "wall_s": ours[0],
        "ideal_s": ideal,
        "busy_pct": 100 * ideal / ours[0],
        "max_in_flight": max_in_flight,
        "client_cpu_ms": 1000 * ours[1] / n_requests,
        "cpu_budget_ms": 1000 * latency / concurrency,
        "floor_wall_s": floor[0],
        "floor_busy_pct": 100 * ideal / floor[0],
        "floor_cpu_ms": 1000 * floor[1] / n_requests,
    }


def openai_small_calls(episodes: int, calls: int, per_call: int, concurrency: int, latency: float,
                       repeats: int) -> dict[str, Any]:
    """Annotation-engine pattern: `episodes` tasks in one loop, each `calls` sequential agenerate calls of
    `per_call` requests. Best of `repeats`, for clients kept per loop and for clients made per call."""
    import asyncio
    import contextvars
    import json
    import subprocess
    import sys
    import urllib.request

    from lerobot_keyframes.vlm import VlmConfig
    from lerobot_keyframes.vlm.openai_backend import OpenAIBackend

    call_clients: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("call_clients")

    class PerCallClients(OpenAIBackend):
        """The backend as it was: clients made for each call (task-local here) and closed at its end."""

        def _clients(self) -> dict[str, Any]:
            return call_clients.get()

        async def _agenerate_raw(self, *args: Any) -> Any:
            clients = self._new_clients()
            call_clients.set(clients)
            try:
                return await super()._agenerate_raw(*args)
            finally:
                for client in clients.values():
                    await client.close()

    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    server = subprocess.Popen(
        [sys.executable, "-m", "lerobot_keyframes.testing.fake_openai", "--latency", str(latency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    best: dict[str, tuple[float, float, int]] = {}
    try:
        api_base = f"http://127.0.0.1:{int(server.stdout.readline())}/v1"
        config = VlmConfig(backend="openai", model_id="fake-model", api_base=api_base,
                           client_concurrency=concurrency)

        async def run(old: bool) -> tuple[float, float, int]:
            backend = (PerCallClients if old else OpenAIBackend)(config)

            async def episode(e: int) -> None:
                for m in range(calls):
                    results = await backend.agenerate(
                        [[{"role": "user", "content": f"id={e * calls + m}"}]] * per_call, schema)
                    assert all(r.ok for r in results)

            await asyncio.gather(*(episode(e) for e in range(concurrency)))  # warm-up: connections
            urllib.request.urlopen(urllib.request.Request(api_base + "/stats/reset", method="POST")).read()
            t0, cpu0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(episode(e) for e in range(episodes)))
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            await backend.aclose()
            connections = json.loads(urllib.request.urlopen(api_base + "/stats").read())["connections"]
            return wall, cpu, connections - 1  # not counting the /stats request's own connection

        for _ in range(repeats):
            for name, old in (("kept", False), ("per_call", True)):
                got = asyncio.run(run(old))
                if got[0] < best.get(name, (float("inf"),))[0]:
                    best[name] = got
    finally:
        server.stdin.close()
        server.wait(10)
    n = episodes * calls * per_call
    return {"requests": n, "calls": episodes * calls, "ideal_s": n * latency / concurrency, **best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--only-openai", action="store_true", help="skip the transformers part")
    args = parser.parse_args()
    batches = [] if args.only_openai else [int(b) for b in args.batches.split(",")]
    rows = transformers_overhead(batches, args.repeats) if batches else []
    print(
        "| batch (2 images each) | backend.generate wall (s) | model.generate (s) | HF processor (s) | our code (s) | ours / backend |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['wall_s']:.3f} | {r['generate_s']:.3f} | {r['processor_s']:.3f} | {r['ours_s']:.3f} | {r['ours_pct_of_backend']:.1f} % |"
        )
    c = openai_concurrency(args.requests, args.concurrency, 0.05, args.repeats)
    print()
    print(
        "| client | requests | client_concurrency | server latency | wall (s) | ideal (s) | concurrency kept busy "
        "| max in flight (server) | client CPU per request | CPU budget per request |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| openai backend | {c['requests']} | {c['concurrency']} | {c['latency_s'] * 1000:.0f} ms | {c['wall_s']:.2f} "
        f"| {c['ideal_s']:.2f} | {c['busy_pct']:.1f} % | {c['max_in_flight']} | {c['client_cpu_ms']:.2f} ms "
        f"| {c['cpu_budget_ms']:.2f} ms |"
    )
    print(
        f"| bare httpx + asyncio.Semaphore (floor) | {c['requests']} | {c['concurrency']} | {c['latency_s'] * 1000:.0f} ms "
        f"| {c['floor_wall_s']:.2f} | {c['ideal_s']:.2f} | {c['floor_busy_pct']:.1f} % | - | {c['floor_cpu_ms']:.2f} ms "
        f"| {c['cpu_budget_ms']:.2f} ms |"
    )
    small = openai_small_calls(160, 5, 2, args.concurrency, 0.05, args.repeats)
    print()
    print("| openai backend, annotation pattern | requests | agenerate calls | ideal (s) | wall (s) "
          "| concurrency kept busy | client CPU per request | new connections |")
    print("|---|---|---|---|---|---|---|---|")
    for name, label in (("kept", "one client per event loop, kept across calls (now)"),
                        ("per_call", "clients made and closed per call (before; baseline)")):
        wall, cpu, conns = small[name]
        print(f"| {label} | {small['requests']} | {small['calls']} | {small['ideal_s']:.2f} | {wall:.2f} "
              f"| {100 * small['ideal_s'] / wall:.1f} % | {1000 * cpu / small['requests']:.2f} ms | {conns} |")
    print(f"\nload average after the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
