"""OpenAI-compatible server backend (vLLM's server, ``transformers serve``, hosted APIs).

Async requests under one concurrency cap (``client_concurrency``, shared by every request of this backend,
retries included), round-robin over several ``api_base``s, per-request timeout, retries with exponential
backoff and jitter on 429 / 5xx / timeouts / connection errors / unreadable answers. Schemas go out as
``response_format={"type": "json_schema", ...}``; in ``structured_output="auto"`` a server that rejects that
is asked again without it and the answer is read with the tolerant JSON extractor. Videos go out as vLLM's
JPEG-sequence ``video_url`` with ``media_io_kwargs`` saying when each frame was taken.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .base import BaseBackend
from .config import VlmConfig
from .errors import MissingExtraError, VlmRequestError
from .limiter import GlobalLimiter
from .messages import MediaIoKwargs, media_io_kwargs, to_openai_messages
from .openai_wire import mentions_format, read_completion, request_body, retry_after, short, wire_json
from .retry import RetryPolicy
from .types import Conversation, JsonSchema, RawOutput

if TYPE_CHECKING:
    import openai
    from openai import AsyncOpenAI

logger = logging.getLogger(__name__)


class OpenAIBackend(BaseBackend):
    """Requests to OpenAI-compatible servers: bodies from `openai_wire`, retries under `retry.RetryPolicy`,
    one process-wide cap on requests in flight (`limiter.GlobalLimiter`)."""

    name = "openai"
    is_async = True

    def __init__(self, config: VlmConfig) -> None:
        try:
            import openai  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("openai", "openai", exc) from exc
        super().__init__(config)
        if not config.api_bases:
            raise ValueError("--vlm.api_base is empty: give one or more comma-separated base URLs")
        self._rr = itertools.count()
        self._limiter = GlobalLimiter(config.client_concurrency)
        self._schema_unsupported: set[str] = set()
        self._media_unsupported: set[str] = set()  # servers that refuse per-request media_io_kwargs
        self._server: Any = None
        # One AsyncOpenAI client per api_base and event loop (httpx connections belong to one loop), kept
        # across agenerate calls: a run reuses its connections instead of paying a TLS context (~30 ms CPU)
        # and new TCP connections per call.
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._clients_lock = threading.Lock()
        if config.auto_serve and config.parallel_servers > 1:  # lerobot-annotate's parallel servers
            from .serve import ServerPool

            self._server = ServerPool(config).start()
            self.config = config.replace(api_base=self._server.api_base)
        elif config.auto_serve:
            from .serve import VllmServer

            self._server = VllmServer(config).start()

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def _init_kwargs(self) -> dict[str, Any]:
        return {"config": self.config.replace(auto_serve=False)}  # a copy uses the servers, never starts more

    async def aclose(self) -> None:
        with self._clients_lock:
            clients = self._loop_clients.pop(asyncio.get_running_loop(), None)
        for client in (clients or {}).values():
            await client.close()

    # -- plumbing --------------------------------------------------------------------------------------
    def _clients(self) -> dict[str, AsyncOpenAI]:
        """This event loop's clients, made on first use."""
        loop = asyncio.get_running_loop()
        with self._clients_lock:
            clients = self._loop_clients.get(loop)
            if clients is None:
                clients = self._loop_clients[loop] = self._new_clients()
        return clients

    def _new_clients(self) -> dict[str, AsyncOpenAI]:
        from openai import AsyncOpenAI

        cfg = self.config
        key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        return {
            base: AsyncOpenAI(base_url=base, api_key=key, max_retries=0, timeout=cfg.request_timeout)
            for base in cfg.api_bases
        }

    def _request_body(
        self, messages: list[dict[str, Any]], schema: JsonSchema | None, budget: int, base: str,
        media: MediaIoKwargs | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """This request's body for `base`, without the fields that server refused before."""
        return request_body(self.config, messages, schema, budget,
                            media=None if base in self._media_unsupported else media,
                            schema_refused=base in self._schema_unsupported)

    # -- one request with retries ------------------------------------------------------------------------
    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy.from_config(self.config)

    async def _one(
        self,
        clients: dict[str, AsyncOpenAI],
        index: int,
        conversation: Conversation,
        schema: JsonSchema | None,
        budget: int,
        media: MediaIoKwargs | None = None,
    ) -> RawOutput:
        """One conversation's request, sent again under `retry_policy` until it answers or fails for good."""
        cfg = self.config
        policy = self.retry_policy
        messages = to_openai_messages(conversation, jpeg_quality=cfg.jpeg_quality)
        bases = cfg.api_bases
        failed = _Failed("no attempt made")
        attempts = 0
        while attempts < policy.attempts:
            base = bases[next(self._rr) % len(bases)]
            outcome = await self._attempt(clients[base], base, messages, schema, budget, media)
            if isinstance(outcome, RawOutput):
                return outcome
            failed = outcome = replace(outcome, message=self._redacted(outcome.message))
            if outcome.free:  # the server refused an optional field, dropped from now on: not its fault
                continue
            attempts += 1
            if not outcome.retryable:
                break
            if attempts < policy.attempts:
                delay = policy.delay(attempts - 1, outcome.retry_after)
                logger.info("request %d to %s failed (%s); retry %d/%d in %.2f s",
                            index, base, failed.message, attempts, policy.max_retries, delay)
                await asyncio.sleep(delay)
        error = VlmRequestError(
            f"request {index} for model {cfg.model_id!r} failed after {attempts} attempt(s) "
            f"(servers: {', '.join(bases)}): {failed.message}",
            status=failed.status,
            attempts=attempts,
            url=bases[0],
        )
        return RawOutput(text="", finish_reason="error", error=error)

    def _redacted(self, text: str) -> str:
        """`text` without the server key: a server (or a proxy) may quote the Authorization header it refused."""
        key = self.config.api_key or os.environ.get("OPENAI_API_KEY")
        return text.replace(key, "<api_key>") if key and len(key) >= 4 else text

    async def _attempt(
        self,
        client: AsyncOpenAI,
        base: str,
        messages: list[dict[str, Any]],
        schema: JsonSchema | None,
        budget: int,
        media: MediaIoKwargs | None,
    ) -> RawOutput | _Failed:
        """One attempt: the completion, or why there is none (and whether trying again may help)."""
        import openai

        body: dict[str, Any] = {}
        data: Any = None  # this attempt's answer, quoted (bounded) when it is not a completion
        try:
            async with self._limiter:
                # built once a slot is free, so what an earlier answer taught (a refused field) applies
                body, enforced = self._request_body(messages, schema, budget, base, media)
                # The SDK's transport, auth and error types, without its per-request model
                # transforms (half of the client CPU per request): the body is plain JSON already.
                data = await client.post("/chat/completions", body=wire_json(body), cast_to=object)
            return read_completion(data, enforced)
        except openai.APIStatusError as exc:
            return self._status_failure(exc, base, body)
        except (openai.APITimeoutError, asyncio.TimeoutError):
            return _Failed(f"timed out after {self.config.request_timeout:.1f} s (--vlm.request_timeout)")
        except openai.APIConnectionError as exc:
            return _Failed(f"connection failed: {short(exc)}")
        except LookupError as exc:  # a 200 whose JSON is not a completion ({"error": ...}, no "choices")
            what = f"the JSON is not a chat completion (no {short(exc, 60)}): {short(data)}"
            return _Failed(f"unreadable answer: {what}")
        except (openai.APIResponseValidationError, ValueError, AttributeError, TypeError) as exc:
            return _Failed(f"unreadable answer: {type(exc).__name__}: {short(exc)}")

    def _status_failure(self, exc: openai.APIStatusError, base: str, body: dict[str, Any]) -> _Failed:
        """An HTTP error status: a refused optional field (dropped for `base` from now on), or a failure that
        the retry policy may or may not try again."""
        status = exc.status_code
        message = f"HTTP {status}: {short(exc)}"
        auto = self.config.structured_output == "auto"
        if status == 400 and "response_format" in body and auto and mentions_format(exc):
            logger.warning("%s rejected response_format (%s); asking it without a schema and extracting JSON "
                           "from text", base, self._redacted(short(exc)))
            self._schema_unsupported.add(base)
            return _Failed(message, status, free=True)
        if status == 400 and "media_io_kwargs" in body.get("extra_body", {}) and "media_io_kwargs" in str(exc):
            if base not in self._media_unsupported:
                logger.warning(
                    "%s refuses per-request media_io_kwargs (%s): its videos are placed at 1 frame/s "
                    "from 0 s instead of at their real times; start vLLM with --trust-request-mm-kwargs "
                    "(auto_serve does)", base, self._redacted(short(exc)),
                )
            self._media_unsupported.add(base)
            return _Failed(message, status, free=True)
        if not self.retry_policy.retries_status(status):
            return _Failed(message, status, retryable=False)
        return _Failed(message, status, retry_after=retry_after(exc))

    async def _agenerate_raw(
        self, conversations: Sequence[Conversation], schemas: list[JsonSchema | None], budgets: list[int]
    ) -> list[RawOutput]:
        media = [media_io_kwargs(conv) for conv in conversations]  # a video timing vLLM cannot take: before any request
        clients = self._clients()
        tasks = [
            self._one(clients, i, conv, schema, budget, media[i])
            for i, (conv, schema, budget) in enumerate(zip(conversations, schemas, budgets))
        ]
        return list(await asyncio.gather(*tasks))


@dataclass(frozen=True)
class _Failed:
    """One attempt that brought no completion."""

    message: str
    status: int | None = None
    retryable: bool = True
    retry_after: float | None = None  # the server's Retry-After (s)
    free: bool = False  # an optional field the server refused, dropped for the next try: uses up no retry


__all__ = ["OpenAIBackend"]
