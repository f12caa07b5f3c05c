"""A scriptable OpenAI-compatible chat server on 127.0.0.1 (stdlib asyncio), for tests and benchmarks.

It answers ``POST /v1/chat/completions`` and ``GET /v1/models`` and *measures* what clients do: requests
in flight (and the maximum), attempts per request key, arrival times, the request bodies. Behaviour is
scripted per request by directives in the last user text, e.g. ``"id=7 fail429=2 delay=0.05"``:

- ``id=K``: request key; the answer is ``{"id": K, "ok": true}`` (also used to count attempts per key);
- ``fail429=N`` / ``fail500=N`` / ``fail400=N``: the first N attempts of this key get that status;
- ``hang=N``: the first N attempts sleep ``hang_seconds`` before answering (client timeouts);
- ``garbage=N``: the first N attempts get HTTP 200 with a body that is not JSON;
- ``short=T``: ``finish_reason="length"`` while ``max_tokens < T``;
- ``prose``: wrap the JSON answer in prose (for the tolerant extractor);
- ``delay=S``: answer after S seconds (default ``latency``).
``reject_response_format=True`` makes every request carrying ``response_format`` fail with HTTP 400;
``reject_media_io_kwargs=True`` does the same for ``media_io_kwargs``, with vLLM's message and ``param``
(a vLLM server started without ``--trust-request-mm-kwargs``).
``responder(request, attempt)`` scripts whole runs (e.g. an annotation run, whose prompts carry no
directives): it returns None (the behaviour above), a string (the answer text), or ``(status, body)``
(``body`` a JSON value or raw bytes), or ``(status, body, seconds)`` to answer that late. ``plausible=True`` answers every request that carries a JSON schema
with ``testing.scripted.plausible_answers`` (valid, deterministic answers).
``GET /v1/stats`` (and ``POST /v1/stats/reset``) expose the counters to a client in another process;
``python -m lerobot_keyframes.testing.fake_openai --latency 0.05`` serves until stdin closes and prints its port
(``--port P --forever``: on port P until SIGTERM, like a server that ``--vlm.serve_command`` starts).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

_DIRECTIVE = re.compile(r"(\w+)=([\w.]+)")


@dataclass
class FakeServerStats:
    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    connections: int = 0  # TCP connections accepted (a client that reuses its connections opens few)
    attempts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    bodies: list[dict[str, Any]] = field(default_factory=list)


class FakeOpenAIServer:
    """Run with ``with FakeOpenAIServer() as server: ... server.api_base ...``."""

    def __init__(
        self,
        *,
        model: str = "fake-model",
        latency: float = 0.0,
        hang_seconds: float = 5.0,
        reject_response_format: bool = False,
        reject_media_io_kwargs: bool = False,
        keep_bodies: bool = True,
        responder: Any = None,
        plausible: bool = False,
        port: int = 0,
    ) -> None:
        self.model = model
        self.latency = latency
        self.hang_seconds = hang_seconds
        self.reject_response_format = reject_response_format
        self.reject_media_io_kwargs = reject_media_io_kwargs
        self.keep_bodies = keep_bodies
        self.responder = responder
        self.plausible = plausible
        self.stats = FakeServerStats()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self.port = port  # 0: any free port

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()
        failed: list[OSError] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
            except OSError as exc:  # the port is taken
                failed.append(exc)
                ready.set()
                loop.close()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        if failed:
            self._loop = self._thread = None
            raise failed[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.stats.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)
                }
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                status, body, extra = await self._respond(method, path, raw)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                ctype = "application/json" if not isinstance(body, bytes) else "application/json"
                head_out = [
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'ERR'}",
                    f"Content-Type: {ctype}",
                    f"Content-Length: {len(payload)}",
                ]
                head_out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head_out) + "\r\n\r\n").encode() + payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def _respond(self, method: str, path: str, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        route = self._service_route(method, path.rstrip("/"))
        if route is not None:
            return route
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {method} {path}"}}, {}
        request = json.loads(raw or b"{}")
        text = _last_user_text(request)
        directives = dict(_DIRECTIVE.findall(text))
        key = directives.get("id", text[:40])
        attempt = self._record_arrival(request, key)
        try:
            delay = float(directives.get("delay", self.latency))
            if attempt <= int(directives.get("hang", 0)):
                await asyncio.sleep(self.hang_seconds)
            elif delay:
                await asyncio.sleep(delay)
            return await self._chat(request, text, directives, key, attempt)
        finally:
            with self._lock:
                self.stats.in_flight -= 1

    def _service_route(self, method: str, path: str) -> tuple[int, Any, dict[str, str]] | None:
        """The routes besides chat completions: /stats, /stats/reset and /models (None for any other)."""
        if method == "GET" and path.endswith("/stats"):
            with self._lock:
                stats = self.stats
                return (
                    200,
                    {
                        "requests": stats.requests,
                        "max_in_flight": stats.max_in_flight,
                        "in_flight": stats.in_flight,
                        "connections": stats.connections,
                    },
                    {},
                )
        if method == "POST" and path.endswith("/stats/reset"):
            with self._lock:
                self.stats.max_in_flight = self.stats.in_flight
                self.stats.requests = 0
                self.stats.connections = 0
            return 200, {"reset": True}, {}
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model"}]}, {}
        return None

    def _record_arrival(self, request: dict[str, Any], key: str) -> int:
        """Count the request (it is in flight until `_respond` ends) and return its attempt number for `key`."""
        with self._lock:
            self.stats.requests += 1
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            self.stats.attempts[key] += 1
            attempt = self.stats.attempts[key]
            self.stats.arrivals[key].append(time.monotonic())
            if self.keep_bodies:
                self.stats.bodies.append(request)
        return attempt

    async def _chat(
        self, request: dict[str, Any], text: str, directives: dict[str, str], key: str, attempt: int
    ) -> tuple[int, Any, dict[str, str]]:
        """A chat completion: refusals configured on the server, then the responder, then the directives."""
        refused = self._refusal(request)
        if refused is not None:
            return refused
        if self.responder is not None:
            scripted = self.responder(request, attempt)
            if isinstance(scripted, tuple):
                if len(scripted) > 2:  # (status, body, seconds to wait first): client timeouts
                    await asyncio.sleep(scripted[2])
                return scripted[0], scripted[1], {}
            if isinstance(scripted, str):
                return 200, _completion(self.model, scripted, "stop"), {}
        if self.plausible and _schema_of(request) is not None:
            from .scripted import plausible_answers

            answer = json.dumps(plausible_answers(request.get("messages", []), _schema_of(request)))
            return 200, _completion(self.model, answer, "stop"), {}
        return self._directed(request, text, directives, key, attempt)

    def _refusal(self, request: dict[str, Any]) -> tuple[int, Any, dict[str, str]] | None:
        """The 400 a server without response_format / media_io_kwargs support answers (None: accepted)."""
        if self.reject_response_format and "response_format" in request:
            return 400, {"error": {"message": "response_format is not supported by this server"}}, {}
        if self.reject_media_io_kwargs and "media_io_kwargs" in request:
            return 400, {"error": {
                "message": "Per-request media_io_kwargs are disabled by default because they can change multimodal "
                           "media loading resource usage. Start the server with --trust-request-mm-kwargs only "
                           "when clients are trusted. (parameter=media_io_kwargs)",
                "type": "BadRequestError", "param": "media_io_kwargs", "code": 400}}, {}
        return None

    def _directed(
        self, request: dict[str, Any], text: str, directives: dict[str, str], key: str, attempt: int
    ) -> tuple[int, Any, dict[str, str]]:
        """The answer the prompt's directives ask for: scripted failures, garbage, prose or a cut-off answer."""
        for code in (429, 500, 400):
            if attempt <= int(directives.get(f"fail{code}", 0)):
                extra = {"Retry-After": "0"} if code == 429 else {}
                return code, {"error": {"message": f"scripted {code} (attempt {attempt})"}}, extra
        if attempt <= int(directives.get("garbage", 0)):
            return 200, b"<html>this is not json", {}
        answer = json.dumps({"id": int(key) if key.isdigit() else key, "ok": True})
        if "prose" in text:
            answer = f"Sure! Here is the answer:\n```json\n{answer}\n```\nHope it helps."
        finish = "stop"
        if "short" in directives and int(request.get("max_tokens") or 0) < int(directives["short"]):
            finish, answer = "length", answer[: len(answer) // 2]
        return 200, _completion(self.model, answer, finish), {}


def _schema_of(request: dict[str, Any]) -> dict[str, Any] | None:
    fmt = request.get("response_format") or {}
    return (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None


def _last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages", [])):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [p.get("text", "") for p in content or [] if p.get("type") == "text"]
        return " ".join(texts)
    return ""


def _completion(model: str, text: str, finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": max(1, len(text) // 4),
            "total_tokens": 10 + len(text) // 4,
        },
    }


def main() -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="scriptable fake OpenAI chat server on 127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--plausible", action="store_true", help="answer schema requests with plausible answers")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one, printed)")
    parser.add_argument("--forever", action="store_true",
                        help="serve until SIGTERM/SIGINT, not until stdin closes (a server started by a command)")
    args = parser.parse_args()
    server = FakeOpenAIServer(model=args.model, latency=args.latency, keep_bodies=False,
                              plausible=args.plausible, port=args.port).start()
    print(server.port, flush=True)
    try:
        if args.forever:
            import signal

            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            while not stop.wait(0.2):
                pass
        else:
            sys.stdin.read()  # serve until stdin closes (the parent exits or closes the pipe)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
