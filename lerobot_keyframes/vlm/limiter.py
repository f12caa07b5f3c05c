"""A concurrency cap that holds across threads and event loops (the openai backend's ``client_concurrency``)."""

from __future__ import annotations

import asyncio
import collections
import threading


class GlobalLimiter:
    """At most ``limit`` holders at once across every thread and event loop of the process.

    ``asyncio.Semaphore`` belongs to one loop, but each sync ``generate()`` call runs its own loop and the
    annotation engine may call it from several threads: the cap must hold across all of them. Waiters are
    served first come, first served; a waiter cancelled after being granted passes its slot on.
    """

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._lock = threading.Lock()
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = (
            collections.deque()
        )

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, fut))
        try:
            await fut
        except asyncio.CancelledError:
            with self._lock:
                if (loop, fut) in self._waiters:
                    self._waiters.remove((loop, fut))
                    raise
            self.release()  # granted and cancelled at the same time: hand the slot on
            raise

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                loop, fut = self._waiters.popleft()
                if loop.is_closed():
                    continue
                try:
                    loop.call_soon_threadsafe(self._grant, fut)
                except RuntimeError:  # the loop closed meanwhile
                    continue
                return
            self._free += 1

    def _grant(self, fut: asyncio.Future[None]) -> None:
        if fut.done():  # cancelled before the grant arrived
            self.release()
        else:
            fut.set_result(None)

    async def __aenter__(self) -> GlobalLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


__all__ = ["GlobalLimiter"]
