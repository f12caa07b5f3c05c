"""A scripted VLM backend for tests and benchmarks: answers come from a Python function, not a model.

It speaks the same protocol as the real backends (`agenerate(conversations, schemas) -> [VlmResult]`),
checks answers against the schema like a backend that enforces it would (an answer that does not fit
becomes a typed failure), can add a fixed latency per call, and counts calls and busy time.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

Responder = Callable[[Sequence[dict[str, Any]], dict[str, Any] | None], Any]


def schema_example(schema: dict[str, Any], rng: random.Random | None = None) -> Any:
    """A valid instance of a (bounded) JSON schema: the smallest arrays, numbers inside their bounds."""
    rng = rng or random.Random(0)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {k: schema_example(v, rng) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        n = max(1, schema.get("minItems", 1))
        return [schema_example(schema["items"], rng) for _ in range(n)]
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        lo, hi = float(schema.get("minimum", 0.0)), float(schema.get("maximum", 1.0))
        return round(rng.uniform(lo, hi), 2)
    if kind == "boolean":
        return False
    return None


def _check(schema: dict[str, Any] | None, value: Any) -> str | None:
    if schema is None:
        return None
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - dev extra
        return None
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        return exc.message
    return None


class ScriptedBackend:
    """`responder(conversation, schema)` returns the answer (a JSON value, or a string to parse)."""

    def __init__(self, responder: Responder | None = None, *, latency: float = 0.0, check_schema: bool = True,
                 model_id: str = "scripted", concurrency: int | None = None) -> None:
        self.responder = responder or (lambda conversation, schema: schema_example(schema or {"type": "object"}))
        self.latency = latency
        self.check_schema = check_schema
        self.model_id = model_id
        self.calls = 0
        self.concurrency = concurrency  # like a server with this many slots: more requests wait in line
        self._slots: asyncio.Semaphore | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.slot_seconds = 0.0  # sum over requests of time spent in a slot (mean concurrency = this / wall)
        self.first_request: float | None = None  # perf_counter() of the first request, and of the last answer
        self.last_answer: float | None = None
        self.busy_seconds = 0.0
        self._busy_since: float | None = None
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.in_flight == 1:
                self._busy_since = time.perf_counter()
            if self.first_request is None:
                self.first_request = time.perf_counter()

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
            if self.in_flight == 0 and self._busy_since is not None:
                self.busy_seconds += time.perf_counter() - self._busy_since
                self._busy_since = None
            self.last_answer = time.perf_counter()

    def _answer(self, conversation: Sequence[dict[str, Any]], schema: dict[str, Any] | None):
        from ..vlm.types import Failure, FailureKind, VlmResult

        value = self.responder(conversation, schema)
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            parsed = json.loads(text)
        except ValueError:
            return VlmResult(text=text, failure=Failure(FailureKind.INVALID_JSON, "not JSON"))
        problem = _check(schema, parsed) if self.check_schema else None
        if problem is not None:
            return VlmResult(text=text, failure=Failure(FailureKind.SCHEMA_MISMATCH, problem))
        return VlmResult(text=text, parsed=parsed, prompt_tokens=10, completion_tokens=len(text) // 4,
                         schema_enforced=schema is not None)

    async def agenerate(self, conversations: Sequence[Sequence[dict[str, Any]]],
                        schemas: Sequence[dict[str, Any] | None] | None = None, *,
                        raise_errors: bool = True) -> list[Any]:
        """Like a backend: a responder that raises is a request failure (raised, or returned as one)."""
        from ..vlm.types import Failure, FailureKind, VlmResult

        schemas = list(schemas) if schemas is not None else [None] * len(conversations)

        if self.concurrency and self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)

        async def one(conversation, schema):
            try:
                if self._slots is not None:
                    async with self._slots:
                        return await served(conversation, schema)
                return await served(conversation, schema)
            except Exception as exc:  # noqa: BLE001 - a failed request, like a backend reports it
                if raise_errors:
                    raise
                return VlmResult(text="", failure=Failure(FailureKind.REQUEST_FAILED, f"{type(exc).__name__}: {exc}"),
                                 finish_reason="error", error=exc)

        async def served(conversation, schema):
            self._enter()
            started = time.perf_counter()
            try:
                if self.latency:
                    await asyncio.sleep(self.latency)
                return self._answer(conversation, schema)
            finally:
                self.slot_seconds += time.perf_counter() - started
                self._leave()

        return list(await asyncio.gather(*(one(c, s) for c, s in zip(conversations, schemas))))

    def generate(self, conversations, schemas=None, *, raise_errors: bool = True) -> list[Any]:
        return asyncio.run(self.agenerate(conversations, schemas, raise_errors=raise_errors))


def prompt_text(conversation: Sequence[dict[str, Any]]) -> str:
    """All text blocks of a conversation, joined (for responders that route on the prompt)."""
    parts = []
    for message in conversation:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(b.get("text", "") for b in content or [] if b.get("type") == "text")
    return "\n".join(parts)


def count_images(conversation: Sequence[dict[str, Any]]) -> int:
    return sum(1 for m in conversation for b in (m.get("content") or []) if isinstance(b, dict) and b.get("type") == "image")


def window_of(prompt: str) -> tuple[float, float] | None:
    """The `[start, end]` time window a segment prompt covers, read back from its text."""
    m = re.search(r"cover ([0-9.]+) s to ([0-9.]+) s", prompt)
    return (float(m.group(1)), float(m.group(2))) if m else None


DEFAULT_SUBTASKS = ("pick up the cube", "place the cube on the pad")


def plausible_answers(
    conversation: Sequence[dict[str, Any]], schema: dict[str, Any] | None, subtasks: Sequence[str] = DEFAULT_SUBTASKS
) -> Any:
    """A deterministic responder with answers a careful model could give: a segment prompt gets
    `subtasks` cut into equal spans of the time window it asks for, a rephrasing prompt two rephrasings,
    anything else the simplest answer of its schema. Module-level, so Ray workers can unpickle it
    (bind other labels with `functools.partial`)."""
    properties = (schema or {}).get("properties", {})
    window = window_of(prompt_text(conversation))
    if window is not None and "subtasks" in properties:
        lo, hi = window
        cuts = [lo + (hi - lo) * k / len(subtasks) for k in range(len(subtasks) + 1)]
        return {"subtasks": [{"text": text, "start": round(a, 2), "end": round(b, 2)}
                             for text, a, b in zip(subtasks, cuts, cuts[1:])]}
    if "rephrasings" in properties:
        return {"rephrasings": ["move the cube onto the pad", "put the cube on the pad"]}
    return schema_example(schema or {"type": "object"})


class ScriptedEngine:
    """A scripted *in-process* engine (``is_async = False``): what the annotation engine puts behind a
    `BatchingScheduler`, like the transformers and vLLM backends. `latency` + `per_item` seconds per call
    emulate an accelerator (one call of 8 costs little more than a call of 1). It records every call's
    batch size and fails loudly if two threads ever enter it at once (as one vLLM engine would crash).
    `fail_when(conversation)` -> True makes the whole call raise, as an engine refusing a batch does."""

    is_async = False

    def __init__(self, responder: Responder | None = None, *, latency: float = 0.0, per_item: float = 0.0,
                 fail_when: Callable[[Sequence[dict[str, Any]]], bool] | None = None,
                 model_id: str = "scripted-engine", batch_size: int = 8) -> None:
        from ..vlm.config import VlmConfig

        self.config = VlmConfig(backend="transformers", model_id=model_id, batch_size=batch_size)
        self.model_id = model_id
        self._answers = ScriptedBackend(responder)
        self.latency, self.per_item, self.fail_when = latency, per_item, fail_when
        self.batch_sizes: list[int] = []
        self.overlaps = 0
        self.threads: set[int] = set()
        self._inside = threading.Lock()

    @property
    def calls(self) -> int:
        return sum(self.batch_sizes)

    def generate(self, conversations, schemas=None, *, raise_errors: bool = True) -> list[Any]:
        if not self._inside.acquire(blocking=False):
            self.overlaps += 1
            raise RuntimeError("ScriptedEngine entered by two threads at once")
        try:
            self.threads.add(threading.get_ident())
            self.batch_sizes.append(len(conversations))
            if self.latency or self.per_item:
                time.sleep(self.latency + self.per_item * len(conversations))
            if self.fail_when is not None and any(self.fail_when(c) for c in conversations):
                raise ValueError("the engine refused this batch (a conversation it cannot process)")
            schema_list = list(schemas) if isinstance(schemas, (list, tuple)) else [schemas] * len(conversations)
            return [self._answers._answer(c, s) for c, s in zip(conversations, schema_list)]
        finally:
            self._inside.release()

    async def agenerate(self, conversations, schemas=None, *, raise_errors: bool = True) -> list[Any]:
        return await asyncio.to_thread(self.generate, conversations, schemas, raise_errors=raise_errors)

    def close(self) -> None:
        pass
