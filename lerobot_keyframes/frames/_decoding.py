"""A provider's per-process decoding runtime: planned requests in, their entries filled with frames.

Frames of the same file, across every request of a call, are merged, sorted and decoded in one batch call
(split in `workers` contiguous chunks decoded on a thread pool). Every thread has its own `DecoderStore`;
the byte-bounded `FrameCache` is the only shared state (its lock guards bookkeeping, never a decode). The
runtime is built lazily in the process that decodes and is never pickled.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..utils.timeline import split_evenly
from ._planning import Entry, Request
from ._store import DecoderStore
from .cache import CacheStats, FrameCache
from .config import ProviderConfig
from .decoders.base import BackendDecodeError
from .errors import DecoderCrashError, FrameDecodeError, VideoFileMissingError

if TYPE_CHECKING:
    import torch

    from ..dataset.records import CameraRef, Episode
    from ..dataset.remote import HubFile, RemoteStats
    from .decoders.images import ParquetImageSource
    from .decoders.index import FileIndex
    from .isolate import IsolatedDecoding

FileKey = tuple[str, str, str]  # (kind, file, camera for image storage)
Task = tuple[str, list[tuple[Request, Entry]], list[int]]  # (kind, members, sorted frames of one chunk)
TaskResult = str | FrameDecodeError  # the video backend that decoded it, or the failure


@dataclass
class ProviderStats:
    cache: CacheStats
    decoded_frames: dict[str, int]
    decode_calls: dict[str, int]
    open_decoders_this_thread: int
    remote: RemoteStats | None = None  # this process's Hub video reads (bytes and requests per file)


class Decoding:
    """This process's decoders (one store per thread), frame cache, counters, workers and thread pool."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.cache = FrameCache(int(config.cache_mb * (1 << 20)))
        self._local = threading.local()
        self._stats_lock = threading.Lock()
        self._decoded: dict[str, int] = {}
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()  # guards the lazy creation of the workers and the pool only
        self._isolation: IsolatedDecoding | None = None
        self._pool: ThreadPoolExecutor | None = None
        # (root, episode) -> its record completed with the timestamps read from the data parquet
        self.completed: dict[tuple[str | None, int], Episode] = {}
        self.remote_indexes: dict[HubFile, FileIndex] = {}  # pts tables of Hub files read by range

    # -- per-thread and per-process resources ----------------------------------------------------------
    def store(self) -> DecoderStore:
        store = getattr(self._local, "store", None)
        if store is None or store.pid != os.getpid():
            store = DecoderStore(self.config.max_open_decoders)
            self._local.store = store
        return store

    def isolated(self) -> IsolatedDecoding:
        if self._isolation is None:
            with self._lock:
                if self._isolation is None:
                    from .isolate import IsolatedDecoding

                    c = self.config
                    self._isolation = IsolatedDecoding(c.video_backend, threads=c.decoder_threads,
                                                       max_open=c.max_open_decoders, max_workers=c.isolate_workers,
                                                       timeout_s=c.timeout_s)
        return self._isolation

    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.config.workers - 1, thread_name_prefix="frames")
        return self._pool

    def remote_file(self, episode: Episode, camera: CameraRef, path: str) -> HubFile | None:
        from ._remote import remote_file

        return remote_file(episode, camera, path)

    def read_headers(self, files: list[HubFile | None]) -> None:
        """Read the headers of a call's Hub files at once (in parallel), before its requests are planned."""
        wanted = [f for f in files if f is not None and f not in self.remote_indexes]
        downloads = self.config.video_access == "download" or self.config.isolate or self.config.video_backend == "ffmpeg"
        if len(wanted) > 1 and not downloads:
            from ._remote import read_headers

            read_headers(wanted)

    def file_index(self, req: Request) -> FileIndex:
        """The pts table of a request's video file (built in a worker process with `isolate=True`; from the
        header, read by range, for a Hub file read remotely)."""
        from .decoders.index import build_file_index, file_index

        if req.remote is not None:
            from . import _remote

            index = _remote.file_index(req, self.config, self.remote_indexes)
            if index is not None:
                return index

        builder = self.isolated().file_index if self.config.isolate else build_file_index
        try:
            return file_index(req.file, builder)
        except FileNotFoundError as exc:
            raise req.file_error(VideoFileMissingError, "video file is missing") from exc
        except BackendDecodeError as exc:
            raise req.file_error(FrameDecodeError, f"cannot index the video: {exc}") from exc
        except _worker_crash_types() as exc:
            raise req.file_error(DecoderCrashError, f"indexing the video crashed its process: {exc}") from exc

    def image_source(self, req: Request) -> ParquetImageSource:
        from .decoders.images import ParquetImageSource

        if not os.path.exists(req.file):
            raise req.file_error(VideoFileMissingError, "data parquet (image camera) is missing")
        try:
            return self.store().get(("image", req.file, req.camera), lambda: ParquetImageSource(req.file, req.camera))
        except BackendDecodeError as exc:
            raise req.file_error(FrameDecodeError, str(exc), video_backend="image") from exc

    # -- filling the entries ---------------------------------------------------------------------------
    def fill_from_cache(self, plans: list[Request]) -> None:
        if self.cache.max_bytes == 0:
            return
        for req in plans:
            if req.error is None:
                for entry in req.entries:
                    if entry.frame >= 0 and entry.error is None:
                        entry.data = self.cache.get(_cache_key(req, entry))

    def decode_missing(self, plans: list[Request]) -> None:
        """Decode every entry still without a frame, one batch per file (in `workers` chunks). The byte ranges
        of Hub files read remotely are fetched first, for every file and camera at once."""
        fetched = None
        if any(req.remote is not None for req in plans):
            from ._remote import prefetch_requests

            fetched = prefetch_requests([m for ms in _missing_by_file(plans).values() for m in ms], self.config)
        try:
            self._decode_missing(plans)
        finally:
            if fetched is not None:
                fetched.release()

    def _decode_missing(self, plans: list[Request]) -> None:
        by_file = _missing_by_file(plans)
        tasks: list[Task] = []
        groups: list[FileKey] = []  # the by_file key of each task
        for key, members in by_file.items():
            chunks = self._split(sorted({e.frame for _, e in members}))
            for chunk in chunks:  # with several chunks, each task fills only the entries of its own frames
                wanted = set(chunk)
                mine = members if len(chunks) == 1 else [(r, e) for r, e in members if e.frame in wanted]
                tasks.append((key[0], mine, chunk))
                groups.append(key)
        failed: dict[FileKey, FrameDecodeError] = {}
        for key, result in zip(groups, self._run_tasks(tasks)):
            if isinstance(result, FrameDecodeError):
                failed.setdefault(key, result)
        for key, failure in failed.items():
            if self.config.on_error == "raise":
                raise failure
            for req, entry in by_file[key]:  # one failed chunk fails the file's whole request: no partial files
                entry.error = req.retarget(failure, entry)
                entry.data = entry.batch = None
        for req in plans:
            if not req.video_backend and any(e.data is not None for e in req.entries):
                req.video_backend = "cache"

    def _split(self, frames: list[int]) -> list[list[int]]:
        """One file's sorted frames in `workers` contiguous chunks (a chunk per thread)."""
        if min(self.config.workers, len(frames)) <= 1:
            return [frames]
        return [frames[a:b] for a, b in split_evenly(len(frames), self.config.workers)]

    def _run_tasks(self, tasks: list[Task]) -> list[TaskResult]:
        """Decode every task; with workers > 1 they run on the pool (the caller's thread takes the first)."""

        def run(task: Task) -> TaskResult:
            kind, members, chunk = task
            try:
                data, name = self._decode_file(kind, members[0][0], chunk)
            except FrameDecodeError as exc:
                return exc
            self._place(members, chunk, data, name, len(tasks))  # on the decoding thread: copies in parallel
            return name

        if self.config.workers <= 1 or len(tasks) <= 1:
            return [run(t) for t in tasks]
        futures = [self.pool().submit(run, t) for t in tasks[1:]]
        return [run(tasks[0])] + [f.result() for f in futures]

    def _place(self, members: list[tuple[Request, Entry]], chunk: list[int], data: torch.Tensor, name: str,
               n_tasks: int) -> None:
        # decoders return N x C x H x W views over N x H x W x C memory (like torchcodec): keep rows as
        # H x W x C so caching and stacking are plain memory copies, never per-pixel transposes
        nhwc = data.permute(0, 2, 3, 1)
        if not nhwc.is_contiguous():
            nhwc = nhwc.contiguous()
        pos = {f: i for i, f in enumerate(chunk)}
        # a call larger than the cache would evict its own frames while inserting them: copy only the
        # last ones of each chunk, which are what an LRU would keep anyway
        row_bytes = nhwc[0].numel() if len(nhwc) else 1
        keep_from = len(chunk) - self.cache.max_bytes // row_bytes // max(1, n_tasks)
        for req, entry in members:
            entry.batch, entry.pos = nhwc, pos[entry.frame]
            entry.data = nhwc[entry.pos]
            req.video_backend = name
            if entry.pos >= keep_from:
                self.cache.put(_cache_key(req, entry), entry.data)

    # -- one file --------------------------------------------------------------------------------------
    def _decode_file(self, kind: str, req: Request, frames: list[int]) -> tuple[torch.Tensor, str]:
        if kind == "image":
            try:
                data, name = self.image_source(req).decode_rows(frames), "image"
            except BackendDecodeError as exc:
                raise req.file_error(FrameDecodeError, str(exc), video_backend="image") from exc
        elif self.config.isolate:
            data, name = self._decode_isolated(req, frames)
        else:
            data, name = self._decode_here(req, frames)
        self._count(name, len(frames))
        return data, name

    def _decode_isolated(self, req: Request, frames: list[int]) -> tuple[torch.Tensor, str]:
        video_backend = self.config.video_backend
        try:
            return self.isolated().decode(req.file, frames)
        except FileNotFoundError as exc:
            raise req.file_error(VideoFileMissingError, "video file is missing") from exc
        except BackendDecodeError as exc:
            raise req.file_error(FrameDecodeError, f"decoding failed: {exc}", video_backend=video_backend) from exc
        except _worker_crash_types() as exc:
            raise req.file_error(DecoderCrashError, f"the isolated decoder crashed: {exc}",
                                 video_backend=video_backend) from exc

    def _decode_here(self, req: Request, frames: list[int]) -> tuple[torch.Tensor, str]:
        from .decoders import open_decoder

        video_backend = self.config.video_backend
        index = req.index or self.file_index(req)  # frame numbers refer to the table they were resolved in
        if req.remote is not None:
            return self._decode_remote(req, frames, index)
        store = self.store()
        key = ("video", req.file, video_backend)

        def factory() -> object:
            return open_decoder(video_backend, req.file, index, threads=self.config.decoder_threads)

        try:
            decoder = store.get(key, factory)
            if getattr(decoder, "index", index) is not index:  # the file changed on disk since it was opened
                store.drop(key)
                decoder = store.get(key, factory)
            return decoder.decode(frames), decoder.name
        except BackendDecodeError as exc:
            store.drop(key)
            raise req.file_error(FrameDecodeError, f"decoding failed: {exc}", video_backend=video_backend) from exc

    def _decode_remote(self, req: Request, frames: list[int], index: FileIndex) -> tuple[torch.Tensor, str]:
        """Decode from the Hub file's byte ranges (fetched by `prefetch_requests`). A failure that is not the
        network's (e.g. approximate seeking missed a frame) downloads the file whole and decodes it from disk."""
        from ..dataset.remote.video import remote_video
        from . import _remote
        from .decoders import open_decoder

        video = remote_video(req.remote)  # type: ignore[arg-type]
        video_backend = self.config.video_backend
        store = self.store()
        key = ("remote", req.file, video_backend)

        def factory() -> object:
            return open_decoder(video_backend, req.file, index, threads=self.config.decoder_threads,
                                source=lambda loop_reads: video.reader(loop_reads=loop_reads))

        video.take_error()
        try:
            decoder = store.get(key, factory)
            return decoder.decode(frames), decoder.name
        except BackendDecodeError as exc:
            store.drop(key)
            failed = video.take_error()
            if failed is not None:
                raise _remote.read_error(req, failed, "reading the video") from exc
            why = f"decoding it from byte ranges failed ({exc})"
        _remote.download(req, why)
        return self._decode_here(req, frames)

    # -- results ---------------------------------------------------------------------------------------
    def stack(self, rows: list[torch.Tensor]) -> torch.Tensor:
        """Stack H x W x C rows into one N x H x W x C tensor; with workers > 1 and a large result the
        copies run on the pool too (torch copies release the GIL).

        Stacked through numpy: `torch.stack` of a few small frames spins up torch's intra-op thread pool,
        which on a busy 2-core machine cost 16-64 ms for 8 frames of 320x240 against 0.4 ms here — a
        frame-cache hit was slower than decoding again."""
        import torch

        nbytes = rows[0].numel() * len(rows)
        if self.config.workers <= 1 or self._pool is None or nbytes < (16 << 20):
            return torch.from_numpy(np.stack([r.numpy() for r in rows]))
        out = torch.empty((len(rows), *rows[0].shape), dtype=rows[0].dtype)

        def copy(bounds: tuple[int, int]) -> None:
            for i in range(*bounds):
                out[i].copy_(rows[i])

        spans = split_evenly(len(rows), self.config.workers)
        futures = [self._pool.submit(copy, span) for span in spans[1:]]
        copy(spans[0])
        for f in futures:
            f.result()
        return out

    def _count(self, name: str, n: int) -> None:
        with self._stats_lock:
            self._decoded[name] = self._decoded.get(name, 0) + n
            self._calls[name] = self._calls.get(name, 0) + 1

    def stats(self) -> ProviderStats:
        with self._stats_lock:
            decoded, calls = dict(self._decoded), dict(self._calls)
        store = getattr(self._local, "store", None)
        remote = None
        if self.remote_indexes:
            from ..dataset.remote import remote_stats

            remote = remote_stats()
        return ProviderStats(self.cache.stats(), decoded, calls, len(store) if store is not None else 0, remote)

    def close(self) -> None:
        """Close this thread's decoders, the worker processes and the pool."""
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
        if self._isolation is not None:
            self._isolation.close()
            self._isolation = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _missing_by_file(plans: list[Request]) -> dict[FileKey, list[tuple[Request, Entry]]]:
    by_file: dict[FileKey, list[tuple[Request, Entry]]] = {}
    for req in plans:
        if req.error is not None:
            continue
        for entry in req.entries:
            if entry.frame >= 0 and entry.error is None and entry.data is None:
                key = (req.kind, req.file, req.camera if req.kind == "image" else "")
                by_file.setdefault(key, []).append((req, entry))
    return by_file


def _cache_key(req: Request, entry: Entry) -> tuple[str, int, str, int]:
    return (req.file, req.episode, req.camera, entry.frame)


def _worker_crash_types() -> tuple[type[BaseException], ...]:
    from .isolate import WorkerCrashed

    return (WorkerCrashed,)

