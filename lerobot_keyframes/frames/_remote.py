"""The frame provider's side of Hub videos read by byte range (`dataset.remote`).

A request whose camera file is a Hub file not on disk (and `video_access` is not "download") is *remote*:
its pts table comes from the file's header (read by range, once per process), the byte ranges its frames need
are fetched before decoding (all files and cameras of a call at once), and its decoder reads a file-like over
those bytes. A file falls back to being downloaded whole, with one INFO line saying why, when its header cannot
be trusted, when decoding from ranges fails for a reason other than the network, when `auto` finds a decode
would need most of the file, with the ffmpeg CLI backend, or with `isolate=True`.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..dataset.remote import (
    AUTO_STREAM_MAX_SHARE,
    HubFile,
    RangeFetchError,
    UntrustedHeader,
    download_whole,
    hub_file,
)
from ..dataset.remote.video import Plan, RemoteVideo, prefetch, remote_video
from .errors import RemoteReadError

if TYPE_CHECKING:
    from ..dataset.records import CameraRef, Episode
    from ._planning import Entry, Request
    from .config import ProviderConfig
    from .decoders.index import FileIndex

logger = logging.getLogger(__name__)


def remote_file(episode: Episode, camera: CameraRef, path: str) -> HubFile | None:
    """The Hub file behind a request whose video is not on disk (read by range, or downloaded whole with
    `video_access="download"`); None for a file on disk or a dataset that does not come from the Hub."""
    if camera.storage != "video" or os.path.exists(path):
        return None
    return hub_file(episode.repo_id, episode.root, camera.path, episode.revision)


def read_headers(files: Sequence[HubFile]) -> None:
    """Read the headers of these Hub files in parallel (each once per process); failures surface later, per
    request, when its frames are planned."""
    from ..dataset.remote.video import registry

    videos = [remote_video(f) for f in dict.fromkeys(files)]
    pending = [v for v in videos if not v.has_header]
    if len(pending) > 1:
        futures = [registry().pool().submit(v.sample_table) for v in pending]
        for future in futures:
            future.exception()


def read_error(req: Request, exc: RangeFetchError, what: str) -> RemoteReadError:
    """The request's error for a failed Hub read: its file, episode, camera and times, what failed, HTTP status."""
    status = f" (HTTP {exc.status})" if exc.status else ""
    return RemoteReadError(f"{what} from the Hub failed: {exc.reason}{status}", status=exc.status, file=req.file,
                           episode=req.episode, camera=req.camera, times=[e.t for e in req.entries])


def file_index(req: Request, config: ProviderConfig, indexes: dict[HubFile, FileIndex]) -> FileIndex | None:
    """The pts table of a remote request's file from its header; None once the file was downloaded whole
    instead (then `req.file` is the local copy)."""
    assert req.remote is not None
    found = indexes.get(req.remote)
    if found is not None:
        return found
    video = remote_video(req.remote)
    why = None
    if config.video_access == "download":
        why = "video_access='download'"
    elif config.isolate:
        why = "isolate=True decodes in worker processes, which read files"
    elif config.video_backend == "ffmpeg":
        why = "the ffmpeg CLI video backend reads files, not byte ranges"
    if why is None:
        try:
            index = index_from_table(req.file, video)
        except UntrustedHeader as exc:
            why = f"its header cannot be trusted for byte-range reads: {exc}"
        except RangeFetchError as exc:
            raise read_error(req, exc, "reading the video's header") from exc
        else:
            indexes[req.remote] = index
            return index
    download(req, why)
    return None


def index_from_table(path: str, video: RemoteVideo) -> FileIndex:
    from .decoders.index import FileIndex

    table = video.sample_table()
    order = table.presentation_order()
    pts = table.pts[order]
    return FileIndex(path=path, stream_index=table.stream_index, time_base=(1, table.timescale), pts=pts,
                     seconds=pts.astype(np.float64) / table.timescale, keyframe=table.keyframe[order],
                     width=table.width, height=table.height, codec=table.codec, source="header")


def download(req: Request, why: str) -> None:
    """Fetch a remote request's file whole (into the Hugging Face cache) and read it from disk from now on."""
    assert req.remote is not None
    try:
        req.file = download_whole(req.remote, why)
    except RangeFetchError as exc:
        raise read_error(req, exc, "downloading the video") from exc
    req.remote = None


class Prefetched:
    """The plans of one call's remote requests, fetched; `release()` lets their bytes be evicted again."""

    def __init__(self) -> None:
        self.items: list[tuple[RemoteVideo, Plan]] = []

    def release(self) -> None:
        for video, plan in self.items:
            video.release(plan)
        self.items = []


def prefetch_requests(members: Sequence[tuple[Request, Entry]], config: ProviderConfig) -> Prefetched:
    """Fetch the byte ranges of every remote request's frames (all files and cameras at once). A request whose
    range fails gets its entries' errors (raised with `on_error="raise"`); an `auto` file that a decode would
    mostly read is downloaded whole instead."""
    per_request: dict[int, tuple[Request, list[Entry]]] = {}
    for req, entry in members:
        if req.remote is not None:
            per_request.setdefault(id(req), (req, []))[1].append(entry)
    done = Prefetched()
    if not per_request:
        return done
    requests_of: dict[HubFile, list[tuple[Request, list[Entry]]]] = {}
    for req, entries in per_request.values():
        requests_of.setdefault(req.remote, []).append((req, entries))  # type: ignore[arg-type]
    by_file: dict[HubFile, list[tuple[Request, list[Entry], Plan]]] = {}
    for file, group in requests_of.items():
        by_file[file] = _plans(remote_video(file), group)
    items: list[tuple[Request, list[Entry], RemoteVideo, Plan]] = []
    failure: RemoteReadError | None = None
    for file, group in by_file.items():
        video = remote_video(file)
        if config.video_access == "auto" and _mostly_read(video, group):
            why = (f"a decode needs more than {AUTO_STREAM_MAX_SHARE:.0%} of the bytes of its episodes "
                   "(video_access='auto')")
            try:
                download(group[0][0], why)
            except RemoteReadError as exc:
                for req, entries, _ in group:
                    failure = failure or exc
                    for entry in entries:
                        entry.error = req.retarget(exc, entry)
                continue
            for req, _, _ in group[1:]:  # the other requests of the call read the same file
                req.file, req.remote = group[0][0].file, None
            continue
        items.extend((req, entries, video, plan) for req, entries, plan in group)
    errors = prefetch([(video, plan) for _, _, video, plan in items])
    for (req, entries, video, plan), error in zip(items, errors):
        if error is None:
            done.items.append((video, plan))
            continue
        exc = read_error(req, error, f"reading bytes {error.start}-{(error.end or 1) - 1} of the video"
                         if error.start is not None else "reading the video")
        failure = failure or exc
        for entry in entries:
            entry.error = req.retarget(exc, entry)
    if failure is not None and config.on_error == "raise":
        done.release()
        raise failure
    return done


def _plans(video: RemoteVideo, group: Sequence[tuple[Request, list[Entry]]]) -> list[tuple[Request, list[Entry], Plan]]:
    """One plan per request of a file. The frames of every request of the file are decoded in one pass, so the
    ranges come from the plan of all of them (the decoder reads through short gaps between episodes too); each
    request holds the ranges that carry its own samples, and fails only with them."""
    combined = video.plan(sorted({e.frame for _, entries in group for e in entries}))
    starts = [a for a, _ in combined.ranges]
    table = video.sample_table()
    out = []
    for req, entries in group:
        own = video.plan(sorted({e.frame for e in entries}))
        touched = set()
        for offset in table.offset[own.samples].tolist():
            touched.add(bisect.bisect_right(starts, offset) - 1)
        ranges = [combined.ranges[i] for i in sorted(touched) if i >= 0]
        fetch = [r for r in combined.fetch or [] if any(a < r[1] and r[0] < b for a, b in ranges)]
        out.append((req, entries, Plan(ranges, own.samples, own.needed_bytes, fetch=fetch)))
    return out


def _mostly_read(video: RemoteVideo, group: Sequence[tuple[Request, list[Entry], Plan]]) -> bool:
    """Whether the plans of one file fetch more than the auto share of the bytes of the episodes they read."""
    table = video.sample_table()
    order = table.presentation_order()
    spans = np.zeros(len(table), bool)
    ranges = []
    for req, _, plan in group:
        first, stop = req.span
        spans[order[first:stop]] = True
        ranges.extend(plan.fetch or [])
    from ..dataset.remote.ranges import merge, total

    span_bytes = int(table.size[spans].sum())
    return span_bytes > 0 and total(merge(ranges)) > AUTO_STREAM_MAX_SHARE * span_bytes
