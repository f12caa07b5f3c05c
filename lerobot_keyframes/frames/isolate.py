"""Decoding in worker processes, so a decoder crash (e.g. a segfault on a broken AV1 stream) or hang
becomes a `DecoderCrashError` for that file instead of a dead job.

Each worker is a long-lived process (forkserver where available, else spawn: never a fork of a parent
that may hold decoders or threads) that keeps its own LRU of open decoders. A caller checks out one
idle worker, sends one request (index a file, or decode sorted frame indices of one file) and waits
for the answer, so a crash is attributed to exactly the request that caused it; the dead worker is
replaced on the next request. Several threads use several workers in parallel.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .decoders.base import BackendDecodeError

if TYPE_CHECKING:
    import torch

    from .decoders.index import FileIndex

logger = logging.getLogger(__name__)

# Test hook: when the parent's environment names a substring of a video path here at request time,
# the worker decoding that file kills itself with SIGSEGV (proves crash isolation without relying on
# a particular decoder bug).
CRASH_HOOK_ENV = "LEROBOT_KEYFRAMES_TEST_CRASH"


class WorkerCrashed(RuntimeError):
    """The worker died or timed out while serving a request."""


def _start_method() -> str:
    methods = mp.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def _context(backend: str) -> Any:
    """The multiprocessing context for workers. With forkserver, ask the server (if this process has not
    started it yet) to import torch, PyAV and torchcodec once, so a new or replacement worker starts in
    milliseconds instead of re-importing them. torchcodec is preloaded only when it already loaded in
    this process (the server would die on its RuntimeError; it only forgives ImportError)."""
    from .decoders.base import torchcodec_available

    method = _start_method()
    ctx = mp.get_context(method)
    if method == "forkserver":
        preload = ["numpy", "torch", "av", "lerobot_keyframes.frames.decoders"]
        if backend in ("auto", "torchcodec") and torchcodec_available():
            preload.append("torchcodec.decoders")
        try:
            from multiprocessing import forkserver

            if getattr(forkserver._forkserver, "_forkserver_pid", None) is None:  # not started yet
                ctx.set_forkserver_preload(preload)
        except Exception:  # private API moved: preloading is only an optimisation
            pass
    return ctx


def _worker_main(conn: Any, backend: str, threads: int, max_open: int) -> None:
    """Worker loop: ('index', path) -> FileIndex; ('decode', path, indices, crash_on) -> NHWC uint8 array."""
    from .decoders import open_decoder
    from .decoders.index import file_index

    decoders: OrderedDict[str, Any] = OrderedDict()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        op = msg[0]
        if op == "stop":
            break
        try:
            if op == "index":
                conn.send(("ok", file_index(msg[1])))
            elif op == "decode":
                _, path, indices, crash_on = msg
                if crash_on and crash_on in path:
                    os.kill(os.getpid(), signal.SIGSEGV)
                dec = decoders.pop(path, None)
                if dec is None:
                    dec = open_decoder(backend, path, file_index(path), threads=threads)
                decoders[path] = dec
                while len(decoders) > max_open:
                    decoders.popitem(last=False)[1].close()
                data = dec.decode(indices)
                array = np.ascontiguousarray(data.permute(0, 2, 3, 1).numpy())
                conn.send(("ok", (array, dec.name)))
            else:
                conn.send(("err", f"unknown request {op!r}"))
        except FileNotFoundError as exc:
            conn.send(("missing", str(exc)))
        except BackendDecodeError as exc:
            conn.send(("err", str(exc)))
        except Exception as exc:  # anything else is still an answer, not a crash
            conn.send(("err", f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, ctx: Any, backend: str, threads: int, max_open: int) -> None:
        parent, child = ctx.Pipe(duplex=True)
        self.conn = parent
        self.process = ctx.Process(
            target=_worker_main, args=(child, backend, threads, max_open), daemon=True,
            name="lerobot-keyframes-decoder",
        )
        self.process.start()
        child.close()

    def stop(self, *, kill: bool = False) -> None:
        try:
            if kill:
                self.process.kill()
            else:
                try:
                    self.conn.send(("stop",))
                except (OSError, ValueError):
                    pass
                self.process.join(timeout=2)
                if self.process.is_alive():
                    self.process.kill()
            self.process.join(timeout=5)
        finally:
            self.conn.close()


def _shutdown(workers: list[_Worker]) -> None:
    for w in list(workers):
        try:
            w.stop()
        except Exception:
            pass
    workers.clear()


class IsolatedDecoding:
    """A small pool of decoder processes; at most `max_workers`, started on demand."""

    def __init__(
        self, video_backend: str, *, threads: int = 1, max_open: int = 8, max_workers: int = 2,
        timeout_s: float = 600.0,
    ) -> None:
        self.video_backend = video_backend
        self.threads = threads
        self.max_open = max_open
        self.max_workers = max(1, int(max_workers))
        self.timeout_s = timeout_s
        self._ctx = _context(video_backend)
        self._all: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._cond = threading.Condition()
        self._finalizer = weakref.finalize(self, _shutdown, self._all)

    # -- worker checkout (the condition guards the idle list only, never a decode) -----------------
    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._idle:
                    return self._idle.pop()
                if len(self._all) < self.max_workers:
                    worker = _Worker(self._ctx, self.video_backend, self.threads, self.max_open)
                    self._all.append(worker)
                    return worker
                self._cond.wait()

    def _release(self, worker: _Worker, *, dead: bool) -> None:
        with self._cond:
            if dead:
                if worker in self._all:
                    self._all.remove(worker)
            else:
                self._idle.append(worker)
            self._cond.notify()
        if dead:
            try:
                worker.stop(kill=True)
            except Exception:
                pass

    def _call(self, msg: tuple) -> Any:
        worker = self._acquire()
        dead = False
        try:
            try:
                worker.conn.send(msg)
                if not worker.conn.poll(self.timeout_s):
                    dead = True
                    raise WorkerCrashed(f"decoder process timed out after {self.timeout_s:.0f}s")
                status, payload = worker.conn.recv()
            except (EOFError, OSError) as exc:
                dead = True
                worker.process.join(timeout=5)
                code = worker.process.exitcode
                how = f"exit code {code}"
                if code is not None and code < 0:
                    try:
                        how = f"signal {signal.Signals(-code).name}"
                    except ValueError:
                        how = f"signal {-code}"
                raise WorkerCrashed(f"decoder process died ({how})") from exc
        finally:
            self._release(worker, dead=dead)
        if status == "missing":
            raise FileNotFoundError(payload)
        if status != "ok":
            raise BackendDecodeError(payload)
        return payload

    # -- requests --------------------------------------------------------------------------------
    def file_index(self, path: str) -> FileIndex:
        return self._call(("index", path))

    def decode(self, path: str, indices: Sequence[int]) -> tuple[torch.Tensor, str]:
        import torch

        crash_on = os.environ.get(CRASH_HOOK_ENV) or None
        array, name = self._call(("decode", path, [int(i) for i in indices], crash_on))
        return torch.from_numpy(array).permute(0, 3, 1, 2), name

    def close(self) -> None:
        with self._cond:
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
        _shutdown(workers)

    @property
    def num_workers(self) -> int:
        return len(self._all)
