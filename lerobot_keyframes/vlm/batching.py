"""Engine batches from many concurrent callers: the scheduler in front of in-process engines.

The annotation engine has many episodes in flight, each asking the model one small question at a time.
An in-process engine (transformers, vLLM) wants the opposite: few calls holding many conversations (a GPU
decodes 32 sequences in about the time of one), and never two calls at once (one ``vllm.LLM`` entered from
two threads aborts the process). `BatchingScheduler` sits between them:

- callers ``await agenerate(...)`` as with any backend; their conversations join one queue;
- one dispatcher per event loop takes up to ``max_batch`` queued conversations — at once when every
  registered caller is waiting (nothing more can come), else after at most ``max_wait_s`` — and runs them
  as one ``generate`` call on the engine's own thread (one thread owns the engine for its whole life);
- each caller gets its own results, in its own order; a batch the engine refuses as a whole is retried one
  conversation at a time, so one bad request fails only its caller.

Servers keep their own concurrency model (`OpenAIBackend` is async): the scheduler is for sync engines.
`InProcessBackend` (transformers, vLLM) has its own scheduler behind its public ``generate``/``agenerate``, so
a backend from `make_backend` is safe to share between coroutines and threads; a scheduler put in front of one
(`wrap_in_process`, as `annotate` does) drives its ``engine_generate`` instead, never a scheduler behind a scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..utils.state import RebuiltOnUnpickle
from .base import BaseBackend, Schemas, VlmBackend, normalize_schemas, raise_first_error
from .config import VlmConfig
from .messages import check_conversation
from .types import Conversation, Failure, FailureKind, JsonSchema, VlmResult

logger = logging.getLogger(__name__)

DEFAULT_MAX_WAIT_S = 0.05
VLLM_DEFAULT_MAX_BATCH = 256


def engine_batch_limit(config: VlmConfig) -> int:
    """Most conversations per engine call: `--vlm.batch_size` (transformers), `--vlm.max_num_seqs` (vLLM;
    vLLM batches a longer list itself, so without it a generous 256)."""
    if getattr(config, "backend", None) == "vllm":
        return max(1, int(getattr(config, "max_num_seqs", None) or VLLM_DEFAULT_MAX_BATCH))
    return max(1, int(getattr(config, "batch_size", 8) or 8))


@dataclass
class BatchStats:
    """What the engine was asked: conversations per call (a histogram), calls, and the batches retried alone."""

    sizes: Counter = field(default_factory=Counter)
    split_batches: int = 0

    @property
    def calls(self) -> int:
        return sum(self.sizes.values())

    @property
    def conversations(self) -> int:
        return sum(size * n for size, n in self.sizes.items())

    @property
    def mean(self) -> float:
        return self.conversations / self.calls if self.calls else 0.0

    def summary(self) -> str:
        hist = ", ".join(f"{size}x{n}" for size, n in sorted(self.sizes.items()))
        return f"{self.calls} engine calls for {self.conversations} conversations (mean {self.mean:.1f}; {hist})"


@dataclass
class _Item:
    conversation: Conversation
    schema: JsonSchema | None
    future: asyncio.Future
    caller: int


class _LoopState:
    """The queue and dispatcher of one event loop (futures and queues belong to their loop)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.callers = 0  # registered callers (episodes in flight); 0: time-based batching only
        self.pending: Counter = Counter()  # caller id -> its conversations not answered yet
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task | None = None


class BatchingScheduler(RebuiltOnUnpickle):
    """A backend that turns concurrent ``agenerate`` calls into engine batches on one engine thread.

    ``vlm``: a sync backend (``generate``); ``max_batch``: most conversations per engine call;
    ``max_wait_s``: how long a partial batch may wait for more callers. Use `caller()` around each
    independent producer (an episode) so a batch goes as soon as every producer is waiting.
    """

    def __init__(self, vlm: VlmBackend, max_batch: int, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        if getattr(vlm, "is_async", False):
            raise TypeError(f"{type(vlm).__name__} is async (a server client): it needs no batching scheduler")
        self.vlm = vlm
        self.config = vlm.config
        self.max_batch = max(1, int(max_batch))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.stats = BatchStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lerobot-keyframes-engine")
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._lock = threading.Lock()
        self._next_caller = 0

    # -- what callers use ------------------------------------------------------------------------------
    @property
    def camera_key(self) -> str | None:
        return getattr(self.config, "camera_key", None)

    @contextlib.asynccontextmanager
    async def caller(self) -> AsyncIterator[None]:
        """Register a producer of requests (an episode) for as long as it may still ask something."""
        state = self._state()
        state.callers += 1
        try:
            yield
        finally:
            state.callers -= 1
            state.wakeup.set()  # one fewer producer: a partial batch may be complete now

    async def agenerate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]:
        convs = list(conversations)
        for i, conv in enumerate(convs):
            check_conversation(conv, i)  # a malformed conversation fails its caller here, never a batch
        schema_list = normalize_schemas(schemas, len(convs))
        if not convs:
            return []
        state = self._state()
        loop = asyncio.get_running_loop()
        with self._lock:
            caller, self._next_caller = self._next_caller, self._next_caller + 1
        items = [_Item(c, s, loop.create_future(), caller) for c, s in zip(convs, schema_list)]
        state.pending[caller] += len(items)
        for item in items:
            state.queue.put_nowait(item)
        state.wakeup.set()
        if state.task is None or state.task.done():
            state.task = loop.create_task(self._dispatch(state), name="lerobot-keyframes-batcher")
        try:
            results = list(await asyncio.gather(*(item.future for item in items)))
        finally:
            state.pending.pop(caller, None)  # answered, or cancelled: nothing of it counts as waiting
        if raise_errors:
            raise_first_error(results)
        return results

    def generate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]:
        """A sync call goes straight to the engine, on the engine's thread (never beside a running batch)."""
        future = self._executor.submit(self._engine_call, conversations, schemas, raise_errors=raise_errors)
        return future.result()

    async def aclose(self) -> None:
        """Stop this loop's dispatcher (the engine stays loaded for the next run)."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None and state.task is not None:
            state.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.task
        aclose = getattr(self.vlm, "aclose", None)
        if aclose is not None:
            await aclose()

    def close(self) -> None:
        """Release the engine (on its own thread) and the thread."""
        try:
            self._executor.submit(self.vlm.close).result()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the engine thread, leaving the engine itself to its owner (a backend a caller passed in)."""
        self._executor.shutdown(wait=True)

    def _init_kwargs(self) -> dict[str, Any]:
        return {"vlm": self.vlm, "max_batch": self.max_batch, "max_wait_s": self.max_wait_s}

    @property
    def _engine_call(self) -> Callable[..., list[VlmResult]]:
        """The engine's own entry: an `InProcessBackend`'s `engine_generate` (its public `generate` goes through
        its own scheduler, which this one replaces: never a scheduler behind a scheduler), else `generate`."""
        return getattr(self.vlm, "engine_generate", None) or self.vlm.generate

    # -- the dispatcher --------------------------------------------------------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            for other in [lp for lp in self._states if lp.is_closed()]:
                del self._states[other]
            return self._states.setdefault(loop, _LoopState())

    def _complete(self, state: _LoopState, batch: list[_Item]) -> bool:
        """True when no more conversations can join: the batch is full, or every registered caller waits."""
        if len(batch) >= self.max_batch:
            return True
        if state.callers <= 0:
            return False
        return len(state.pending) >= state.callers

    async def _dispatch(self, state: _LoopState) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await state.queue.get()]
            deadline = loop.time() + self.max_wait_s
            while True:
                while len(batch) < self.max_batch and not state.queue.empty():
                    batch.append(state.queue.get_nowait())
                if self._complete(state, batch):
                    break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                state.wakeup.clear()
                if not state.queue.empty():
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(state.wakeup.wait(), remaining)
            results = await loop.run_in_executor(self._executor, self._run_batch, batch)
            for item, result in zip(batch, results):
                state.pending[item.caller] -= 1
                if state.pending[item.caller] <= 0:
                    del state.pending[item.caller]  # this caller is back to work, not waiting
                if not item.future.done():
                    item.future.set_result(result)

    def _run_batch(self, batch: list[_Item]) -> list[VlmResult]:
        """One engine call (on the engine thread); a batch refused as a whole is retried one by one."""
        convs = [item.conversation for item in batch]
        schemas = [item.schema for item in batch]
        try:
            results = self._engine_call(convs, schemas, raise_errors=False)
            self.stats.sizes[len(batch)] += 1
            return results
        except Exception as exc:  # noqa: BLE001 - isolated below, reported per conversation
            if len(batch) == 1:
                self.stats.sizes[1] += 1
                return [_failed(exc)]
            logger.warning("the engine refused a batch of %d (%s: %s); retrying its conversations one by one",
                           len(batch), type(exc).__name__, exc)
            self.stats.split_batches += 1
            return [r for item in batch for r in self._run_batch([item])]


def _failed(exc: BaseException) -> VlmResult:
    return VlmResult(text="", failure=Failure(FailureKind.REQUEST_FAILED, f"{type(exc).__name__}: {exc}"),
                     finish_reason="error", error=exc)


def wrap_in_process(vlm: VlmBackend, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> VlmBackend:
    """`vlm` behind a `BatchingScheduler` when it is an in-process engine (a backend that declares
    `is_async = False`, as `BaseBackend` subclasses do); servers and async test doubles unchanged."""
    if getattr(vlm, "is_async", None) is not False or isinstance(vlm, BatchingScheduler):
        return vlm
    return BatchingScheduler(vlm, engine_batch_limit(vlm.config), max_wait_s)


class InProcessBackend(BaseBackend):
    """A model in this process (transformers, vLLM), safe to share between coroutines and threads.

    One engine must never be entered by two threads at once (a `vllm.LLM` aborts the process), and it answers
    one call of many conversations about as fast as a call of one. So the public `generate` and `agenerate`
    go through this backend's own `BatchingScheduler`: one engine thread, and the concurrent `agenerate`
    calls of an event loop share engine batches (up to `engine_batch_limit`). `engine_generate` is the
    engine path itself, on the calling thread: what a scheduler runs on its engine thread.
    Use `caller()` around each independent producer so a batch goes as soon as every producer is waiting.
    """

    def __init__(self, config: VlmConfig) -> None:
        super().__init__(config)
        self._scheduler: tuple[int, BatchingScheduler] | None = None  # (pid, scheduler): not inherited by fork
        self._scheduler_lock = threading.Lock()

    @property
    def scheduler(self) -> BatchingScheduler:
        """This process's scheduler in front of the engine (made on first use, again after `close`)."""
        with self._scheduler_lock:
            held = self._scheduler
            if held is None or held[0] != os.getpid():
                held = (os.getpid(), BatchingScheduler(_EngineCalls(self), engine_batch_limit(self.config)))
                self._scheduler = held
            return held[1]

    @property
    def batch_stats(self) -> BatchStats:
        """Conversations per engine call of this backend's public calls so far."""
        return self.scheduler.stats

    def caller(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Register a producer of requests for as long as it may still ask something (`BatchingScheduler.caller`)."""
        return self.scheduler.caller()

    def generate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]:
        return self.scheduler.generate(conversations, schemas, raise_errors=raise_errors)

    async def agenerate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]:
        return await self.scheduler.agenerate(conversations, schemas, raise_errors=raise_errors)

    def engine_generate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]:
        """Generate on the calling thread, straight into the engine (the engine's own lock keeps two threads out)."""
        return BaseBackend.generate(self, conversations, schemas, raise_errors=raise_errors)

    async def aclose(self) -> None:
        """Stop the running loop's dispatcher of this backend's scheduler (the engine stays loaded)."""
        with self._scheduler_lock:
            held = self._scheduler
        if held is not None and held[0] == os.getpid():
            await held[1].aclose()

    def close(self) -> None:
        """Release the engine and the scheduler's thread (a later call starts both again)."""
        with self._scheduler_lock:
            held, self._scheduler = self._scheduler, None
        if held is not None and held[0] == os.getpid():
            held[1].close()  # the engine is released on the thread that used it
        else:
            self.release_engine()

    def release_engine(self) -> None:
        """Drop this process's engine (the next call loads it again)."""


class _EngineCalls:
    """What a backend's own scheduler drives: the backend's engine path, never its public (scheduled) one."""

    is_async = False

    def __init__(self, backend: InProcessBackend) -> None:
        self.backend = backend
        self.config = backend.config

    def generate(
        self, conversations: Sequence[Conversation], schemas: Schemas = None, *, raise_errors: bool = True
    ) -> list[VlmResult]:
        return self.backend.engine_generate(conversations, schemas, raise_errors=raise_errors)

    def close(self) -> None:
        self.backend.release_engine()
