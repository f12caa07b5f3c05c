"""The backend protocol and the logic every backend shares: batching contract, truncation retry, parsing.

A backend implements one engine hook, ``_generate_raw`` (sync engines) or ``_agenerate_raw`` (async
clients). What happens around it (checking the conversations, retrying truncated answers, parsing and
typing the results) is written once, as a plan (`BaseBackend._plan`) that both call paths drive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Coroutine, Generator, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from ..utils.state import RebuiltOnUnpickle
from .config import VlmConfig
from .jsonparse import parse_answer
from .messages import check_conversation
from .retry import TruncationRetry
from .types import Conversation, Failure, FailureKind, JsonSchema, RawOutput, VlmResult

logger = logging.getLogger(__name__)
T = TypeVar("T")

Schemas = JsonSchema | Sequence[JsonSchema | None] | None
# One engine call: the conversations, a schema (or None) and a token budget for each.
EngineRequest = tuple[list[Conversation], list[JsonSchema | None], list[int]]
# A generation as a plan: it yields engine calls, is sent their outputs, and returns the results.
Plan = Generator[EngineRequest, list[RawOutput], list[VlmResult]]


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
    import asyncio  # here, not at the top: `import lerobot_keyframes.vlm` (the family table) stays cheap

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


class BaseBackend(RebuiltOnUnpickle):
    """Shared driver. Subclasses implement ``_generate_raw`` (sync engines) or ``_agenerate_raw`` (async)."""

    name: ClassVar[str] = "base"
    is_async: ClassVar[bool] = False

    def __init__(self, config: VlmConfig) -> None:
        self.config = config

    def _init_kwargs(self) -> dict[str, Any]:
        return {"config": self.config}

    @property
    def truncation_retry(self) -> TruncationRetry:
        return TruncationRetry.from_config(self.config)

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
        plan = self._plan(conversations, schemas, raise_errors)
        try:
            request = next(plan)
            while True:
                request = plan.send(self._generate_raw(*request))
        except StopIteration as done:
            return done.value

    async def agenerate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]:
        if not self.is_async:
            import asyncio

            return await asyncio.to_thread(self.generate, conversations, schemas, raise_errors=raise_errors)
        plan = self._plan(conversations, schemas, raise_errors)
        try:
            request = next(plan)
            while True:
                request = plan.send(await self._agenerate_raw(*request))
        except StopIteration as done:
            return done.value

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

    # -- the plan both paths drive -------------------------------------------------------------------
    def _plan(self, conversations: Sequence[Conversation], schemas: Schemas, raise_errors: bool) -> Plan:
        """Check, generate, retry the truncated answers once with a larger budget, parse."""
        convs = list(conversations)
        for i, conv in enumerate(convs):
            check_conversation(conv, i)
        schema_list = normalize_schemas(schemas, len(convs))
        if not convs:
            return []
        truncation = self.truncation_retry
        raws = yield convs, schema_list, [truncation.max_new_tokens] * len(convs)
        retry = truncation.indices(raws)
        if retry:
            logger.info("%d of %d answers hit max_new_tokens; retrying them once with %d tokens",
                        len(retry), len(raws), truncation.budget)
            again = yield [convs[i] for i in retry], [schema_list[i] for i in retry], [truncation.budget] * len(retry)
            for i, raw in zip(retry, again):
                raws[i] = raw
        retried = set(retry)
        results = [self._result(raw, schema, truncation.attempts(i in retried))
                   for i, (raw, schema) in enumerate(zip(raws, schema_list))]
        if raise_errors:
            raise_first_error(results)
        return results

    def _result(self, raw: RawOutput, schema: JsonSchema | None, attempts: int) -> VlmResult:
        """One engine output as a typed result: the parsed value, or why there is none."""
        if raw.error is not None:
            return VlmResult(text=raw.text, failure=Failure(FailureKind.REQUEST_FAILED, str(raw.error)),
                             finish_reason="error", attempts=attempts, schema_enforced=raw.schema_enforced,
                             error=raw.error)
        parsed: Any = None
        failure: Failure | None = None
        if schema is not None:
            parsed, failure = parse_answer(raw.text, schema, enforced=raw.schema_enforced,
                                           finish_reason=raw.finish_reason)
        elif raw.finish_reason == "length":
            failure = Failure(FailureKind.TRUNCATED,
                              f"answer stopped at the token budget ({raw.completion_tokens} tokens)")
        if failure is not None and failure.kind is FailureKind.TRUNCATED:
            failure = Failure(FailureKind.TRUNCATED, self.truncation_retry.explain(failure.message, attempts))
        return VlmResult(text=raw.text, parsed=parsed, failure=failure, finish_reason=raw.finish_reason,
                         prompt_tokens=raw.prompt_tokens, completion_tokens=raw.completion_tokens,
                         attempts=attempts, schema_enforced=raw.schema_enforced)


def raise_first_error(results: Sequence[VlmResult]) -> None:
    """Raise the first request error of a batch (every request was attempted), noting how many failed."""
    failed = [r.error for r in results if r.error is not None]
    if not failed:
        return
    first = failed[0]
    if len(failed) > 1 and hasattr(first, "add_note"):
        first.add_note(f"{len(failed)} of {len(results)} requests of this batch failed")
    raise first
