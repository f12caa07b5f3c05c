"""The backend protocol and the logic every backend shares: batching contract, truncation retry, parsing."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from .config import VlmConfig
from .jsonparse import parse_answer
from .messages import check_conversation
from .types import Conversation, Failure, FailureKind, JsonSchema, RawOutput, VlmResult

logger = logging.getLogger(__name__)
T = TypeVar("T")

Schemas = JsonSchema | Sequence[JsonSchema | None] | None


@runtime_checkable
class VlmBackend(Protocol):
    """What the annotation engine needs from a model.

    ``generate(conversations, schemas)`` returns one ``VlmResult`` per conversation, in input order.
    ``schemas`` is None (free text), one schema for all, or one (or None) per conversation.
    ``raise_errors=True`` raises the first request failure after the whole batch has been attempted;
    ``False`` returns it as a result with ``failure.kind == REQUEST_FAILED``.
    """

    config: VlmConfig

    def generate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]: ...

    async def agenerate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]: ...

    def close(self) -> None: ...


def normalize_schemas(schemas: Schemas, n: int) -> list[JsonSchema | None]:
    if schemas is None:
        return [None] * n
    if isinstance(schemas, Mapping):
        return [schemas] * n
    schemas = list(schemas)
    if len(schemas) != n:
        raise ValueError(
            f"got {n} conversations but {len(schemas)} schemas: pass one schema or one per conversation"
        )
    return schemas


def run_coroutine_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="lerobot-keyframes-vlm", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class BaseBackend:
    """Shared driver. Subclasses implement ``_generate_raw`` (sync engines) or ``_agenerate_raw`` (async)."""

    name = "base"
    is_async = False

    def __init__(self, config: VlmConfig) -> None:
        self.config = config

    # -- engine hooks -------------------------------------------------------------------------------
    def _generate_raw(
        self, conversations: Sequence[Conversation], schemas: list[JsonSchema | None], budgets: list[int]
    ) -> list[RawOutput]:
        raise NotImplementedError

    async def _agenerate_raw(
        self, conversations: Sequence[Conversation], schemas: list[JsonSchema | None], budgets: list[int]
    ) -> list[RawOutput]:
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------------------
    def generate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]:
        if self.is_async:
            return run_coroutine_sync(self._agenerate_once(conversations, schemas, raise_errors))
        convs, schema_list = self._prepare(conversations, schemas)
        if not convs:
            return []
        budgets = [self.config.max_new_tokens] * len(convs)
        raws = self._generate_raw(convs, schema_list, budgets)
        retry = self._retry_indices(raws, budgets)
        if retry:
            logger.info(
                "%d of %d answers hit max_new_tokens; retrying them once with a larger budget",
                len(retry),
                len(raws),
            )
            new_budget = self._retry_budget()
            again = self._generate_raw(
                [convs[i] for i in retry], [schema_list[i] for i in retry], [new_budget] * len(retry)
            )
            for i, raw in zip(retry, again):
                raws[i] = raw
        return self._finish(raws, schema_list, set(retry), raise_errors)

    async def agenerate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]:
        if not self.is_async:
            return await asyncio.to_thread(self.generate, conversations, schemas, raise_errors=raise_errors)
        convs, schema_list = self._prepare(conversations, schemas)
        if not convs:
            return []
        budgets = [self.config.max_new_tokens] * len(convs)
        raws = await self._agenerate_raw(convs, schema_list, budgets)
        retry = self._retry_indices(raws, budgets)
        if retry:
            logger.info(
                "%d of %d answers hit max_new_tokens; retrying them once with a larger budget",
                len(retry),
                len(raws),
            )
            new_budget = self._retry_budget()
            again = await self._agenerate_raw(
                [convs[i] for i in retry], [schema_list[i] for i in retry], [new_budget] * len(retry)
            )
            for i, raw in zip(retry, again):
                raws[i] = raw
        return self._finish(raws, schema_list, set(retry), raise_errors)

    async def _agenerate_once(
        self, conversations: Sequence[Conversation], schemas: Schemas, raise_errors: bool
    ) -> list[VlmResult]:
        """`agenerate` in a loop made for this one call: what the loop holds is released before it closes."""
        try:
            return await self.agenerate(conversations, schemas, raise_errors=raise_errors)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Release what this backend holds on the running event loop (HTTP clients and their connections).

        Async backends keep them between `agenerate` calls of one loop, so a long run reuses its connections;
        call this before that loop ends (the annotation engine does). Idempotent.
        """

    def close(self) -> None:
        """Release engines, servers and clients (idempotent)."""

    def __enter__(self) -> BaseBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- shared logic --------------------------------------------------------------------------------
    def _prepare(
        self, conversations: Sequence[Conversation], schemas: Schemas
    ) -> tuple[list[Conversation], list[JsonSchema | None]]:
        convs = list(conversations)
        for i, conv in enumerate(convs):
            check_conversation(conv, i)
        return convs, normalize_schemas(schemas, len(convs))

    def _retry_budget(self) -> int:
        cfg = self.config
        return max(
            cfg.max_new_tokens,
            min(cfg.truncation_retry_max_tokens, math.ceil(cfg.max_new_tokens * cfg.truncation_retry_factor)),
        )

    def _retry_indices(self, raws: list[RawOutput], budgets: list[int]) -> list[int]:
        if self._retry_budget() <= self.config.max_new_tokens:
            return []
        return [i for i, raw in enumerate(raws) if raw.error is None and raw.finish_reason == "length"]

    def _finish(
        self, raws: list[RawOutput], schemas: list[JsonSchema | None], retried: set[int], raise_errors: bool
    ) -> list[VlmResult]:
        results: list[VlmResult] = []
        first_error: BaseException | None = None
        for i, (raw, schema) in enumerate(zip(raws, schemas)):
            attempts = 2 if i in retried else 1
            if raw.error is not None:
                first_error = first_error or raw.error
                results.append(
                    VlmResult(
                        text=raw.text,
                        failure=Failure(FailureKind.REQUEST_FAILED, str(raw.error)),
                        finish_reason="error",
                        attempts=attempts,
                        schema_enforced=raw.schema_enforced,
                        error=raw.error,
                    )
                )
                continue
            parsed: Any = None
            failure: Failure | None = None
            if schema is not None:
                parsed, failure = parse_answer(
                    raw.text, schema, enforced=raw.schema_enforced, finish_reason=raw.finish_reason
                )
            elif raw.finish_reason == "length":
                failure = Failure(
                    FailureKind.TRUNCATED,
                    f"answer stopped at the token budget ({raw.completion_tokens} tokens)",
                )
            if failure is not None and failure.kind is FailureKind.TRUNCATED:
                failure = Failure(
                    FailureKind.TRUNCATED,
                    f"{failure.message}; still truncated after {attempts} attempt(s) "
                    f"(max_new_tokens {self.config.max_new_tokens} then {self._retry_budget()}): "
                    "raise --vlm.max_new_tokens or bound the schema (lerobot_keyframes.vlm.schema)",
                )
            results.append(
                VlmResult(
                    text=raw.text,
                    parsed=parsed,
                    failure=failure,
                    finish_reason=raw.finish_reason,
                    prompt_tokens=raw.prompt_tokens,
                    completion_tokens=raw.completion_tokens,
                    attempts=attempts,
                    schema_enforced=raw.schema_enforced,
                )
            )
        if first_error is not None and raise_errors:
            n_failed = sum(1 for r in results if r.error is not None)
            if n_failed > 1 and hasattr(first_error, "add_note"):
                first_error.add_note(f"{n_failed} of {len(results)} requests of this batch failed")
            raise first_error
        return results
