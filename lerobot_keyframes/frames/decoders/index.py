"""The presentation-time table of a video file, read once per process by demuxing packets (no decoding).

Every backend decodes by *frame index* into this table (index = position in pts order, which is how
torchcodec, PyAV and ffmpeg's frame counters count), and every backend's output is checked against it,
so a frame is never chosen by "the frame playing at t" arithmetic that lands on a neighbour.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...utils.timeline import nearest_frame_indices
from .base import BackendDecodeError

logger = logging.getLogger(__name__)

_INDEX_CACHE: OrderedDict[tuple[str, int, int], FileIndex] = OrderedDict()
_INDEX_LOCK = threading.Lock()  # guards the dict only; building happens outside it
_INDEX_CACHE_SIZE = 512


@dataclass(frozen=True, eq=False)
class FileIndex:
    """Presentation times of the frames of one video stream, sorted, with keyframe flags."""

    path: str
    stream_index: int
    time_base: tuple[int, int]  # (numerator, denominator)
    pts: np.ndarray  # int64, sorted strictly increasing, in time_base units
    seconds: np.ndarray  # float64, pts * time_base
    keyframe: np.ndarray  # bool, aligned with pts
    width: int
    height: int
    codec: str
    source: str = "packets"  # "header" (container sample index, checked) or "packets" (full demux)

    def __len__(self) -> int:
        return len(self.pts)

    @property
    def frame_period(self) -> float:
        """Median spacing between frames, in seconds (inf for a single frame)."""
        cached = self.__dict__.get("_period")
        if cached is None:
            cached = float(np.median(np.diff(self.seconds))) if len(self.seconds) >= 2 else float("inf")
            object.__setattr__(self, "_period", cached)
        return cached

    def nearest(self, seconds: np.ndarray) -> np.ndarray:
        """Index of the frame whose pts is nearest to each time (ties go to the earlier frame)."""
        return nearest_frame_indices(self.seconds, np.asarray(seconds, dtype=np.float64))

    def keyframe_at_or_before(self, i: int) -> int:
        """Index of the last keyframe at or before frame i (0 when the file flags none)."""
        keys = self._key_positions
        pos = int(np.searchsorted(keys, i, side="right")) - 1
        return int(keys[pos]) if pos >= 0 else 0

    def seek_target(self, i: int) -> int:
        """A demuxer seek target (stream time base) that lands on frame i's keyframe when i is one:
        FFmpeg's mp4 seek picks the last keyframe with pts <= target; aim a quarter frame past it so
        no rounding can fall below it, and never as far as the next frame."""
        if len(self.pts) < 2:
            return int(self.pts[i])
        gap = self.__dict__.get("_min_gap")
        if gap is None:
            gap = int(np.min(np.diff(self.pts)))
            object.__setattr__(self, "_min_gap", gap)
        return int(self.pts[i]) + max(0, gap // 4)

    @property
    def _key_positions(self) -> np.ndarray:
        cached = self.__dict__.get("_keys")
        if cached is None:
            cached = np.nonzero(self.keyframe)[0]
            if len(cached) == 0 or cached[0] != 0:
                cached = np.concatenate([[0], cached]).astype(np.int64)
            object.__setattr__(self, "_keys", cached)
        return cached

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_keys", None)
        state.pop("_period", None)
        state.pop("_min_gap", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


_NO_REORDER_CODECS = frozenset({"av1", "libdav1d", "vp8", "vp9", "mjpeg", "png"})
_CHECK_PACKETS = 8


def _pts_from_header(container: Any, stream: Any) -> tuple[list[int], list[bool]] | None:
    """The pts table straight from the container's sample index (mp4 `stts`/`stss`, read at open),
    without reading a single packet, or None when that index cannot be trusted as presentation times.

    Trusted only for streams without frame reordering (AV1, lerobot's default, VP8/9; H.264 without
    B-frames), where decode and presentation times coincide, and only when the first packets and the
    last packet of the file carry exactly those timestamps (catches edit-list shifts)."""
    entries = getattr(stream, "index_entries", None)  # PyAV >= 15
    if entries is None:
        return None
    ctx = stream.codec_context
    if ctx.name not in _NO_REORDER_CODECS and getattr(ctx, "has_b_frames", True):
        return None
    n = len(entries)
    if n == 0 or (stream.frames and n != stream.frames):
        return None
    table = [(e.timestamp, e.is_keyframe, e.is_discard) for e in entries]
    ts = np.fromiter((t for t, _, _ in table), dtype=np.int64, count=n)
    key = [bool(k) for _, k, _ in table]
    if any(d for _, _, d in table) or (n > 1 and np.any(np.diff(ts) <= 0)):
        return None
    seen = []
    for packet in container.demux(stream):
        if packet.size:
            seen.append(packet.pts)
        if len(seen) >= min(_CHECK_PACKETS, n):
            break
    if seen != ts[: len(seen)].tolist():
        return None
    container.seek(int(ts[-1]), stream=stream, backward=True, any_frame=False)
    last = None
    for packet in container.demux(stream):
        if packet.size:
            last = packet.pts
    if last != int(ts[-1]):
        return None
    return ts.tolist(), key


def build_file_index(path: str, *, from_header: bool = True) -> FileIndex:
    """The pts / keyframe table of the best video stream of `path`: from the container's own index when
    it is trustworthy (see `_pts_from_header`), else by demuxing every packet (no decoding)."""
    container = _open(path)
    try:
        if not container.streams.video:
            raise BackendDecodeError("no video stream in the file")
        stream = container.streams.video[0]
        if stream.codec_context is None:  # an unknown codec tag (fourcc): PyAV opens the file but has no decoder
            raise BackendDecodeError("the video stream's codec is unknown to FFmpeg (no decoder for its codec tag)")
        tb = stream.time_base
        if tb is None:
            raise BackendDecodeError("video stream has no time base")
        header = None
        if from_header:
            try:
                header = _pts_from_header(container, stream)
            except Exception:  # e.g. an unreadable tail: the full demux below reports it properly
                header = None
        width = int(stream.codec_context.width or 0)
        height = int(stream.codec_context.height or 0)
        codec = str(stream.codec_context.name)
        stream_index = int(stream.index)
    finally:
        container.close()
    if header is not None:
        pts, key, source = header[0], header[1], "header"
    else:
        pts, key = _pts_from_packets(path)
        source = "packets"
    if not pts:
        raise BackendDecodeError("the video stream holds no frames")
    pts_arr = np.asarray(pts, dtype=np.int64)
    order = np.argsort(pts_arr, kind="stable")
    pts_arr = pts_arr[order]
    if len(pts_arr) > 1 and np.any(np.diff(pts_arr) <= 0):
        dup = int(pts_arr[np.nonzero(np.diff(pts_arr) <= 0)[0][0]])
        raise BackendDecodeError(f"two frames share pts {dup}; cannot map times to frames")
    seconds = pts_arr.astype(np.float64) * tb.numerator / tb.denominator
    return FileIndex(
        path=path,
        stream_index=stream_index,
        time_base=(int(tb.numerator), int(tb.denominator)),
        pts=pts_arr,
        seconds=seconds,
        keyframe=np.asarray(key, dtype=bool)[order],
        width=width,
        height=height,
        codec=codec,
        source=source,
    )


_MP4_SUFFIXES = (".mp4", ".mov", ".m4v")


def open_container(path: str, stream: Any = None) -> Any:
    """`av.open` for reading; mp4/mov files skip FFmpeg's format probing (half the open time on small
    files: the cold path opens every file once). Anything that fails that way is opened again normally,
    so a misnamed file still opens and a broken one raises FFmpeg's own error. `stream`: a file-like holding
    the bytes of `path` (e.g. a Hub video read by range), read instead of the path."""
    import av

    if path.lower().endswith(_MP4_SUFFIXES):
        try:
            return av.open(stream if stream is not None else path, format="mov")
        except Exception:  # not really mp4, or broken: probe, and let FFmpeg's error speak
            if stream is not None:
                stream.seek(0)
    return av.open(stream if stream is not None else path)


def _open(path: str) -> Any:
    try:
        return open_container(path)
    except Exception as exc:  # PyAV raises av.error.* (OSError/ValueError subclasses) for broken files
        raise BackendDecodeError(f"cannot open video ({type(exc).__name__}: {exc})") from exc


def _pts_from_packets(path: str) -> tuple[list[int], list[bool]]:
    """Demux every packet of the video stream (reads the file, decodes nothing)."""
    pts: list[int] = []
    key: list[bool] = []
    container = _open(path)
    try:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return _pts_by_decoding(path)
                pts.append(int(packet.pts))
                key.append(bool(packet.is_keyframe))
        except Exception as exc:
            raise BackendDecodeError(f"cannot demux video ({type(exc).__name__}: {exc})") from exc
    finally:
        container.close()
    return pts, key


def _pts_by_decoding(path: str) -> tuple[list[int], list[bool]]:
    """Fallback for containers without packet pts: decode once and read the frames' own pts."""
    pts: list[int] = []
    key: list[bool] = []
    with open_container(path) as container:
        for frame in container.decode(video=0):
            if frame.pts is None:
                raise BackendDecodeError("frames without presentation timestamps; cannot index the video")
            pts.append(int(frame.pts))
            key.append(bool(frame.key_frame))
    return pts, key


def file_index(path: str, builder: Callable[[str], FileIndex] | None = None) -> FileIndex:
    """The (cached) index of `path`; rebuilt when the file's size or mtime changes.

    `builder` replaces `build_file_index` (the isolated mode builds indexes in a worker process).
    Raises FileNotFoundError for a missing file.
    """
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    with _INDEX_LOCK:
        hit = _INDEX_CACHE.get(key)
        if hit is not None:
            _INDEX_CACHE.move_to_end(key)
            return hit
    index = (builder or build_file_index)(path)
    with _INDEX_LOCK:
        _INDEX_CACHE[key] = index
        while len(_INDEX_CACHE) > _INDEX_CACHE_SIZE:
            _INDEX_CACHE.popitem(last=False)
    return index


def clear_index_cache() -> None:
    with _INDEX_LOCK:
        _INDEX_CACHE.clear()


def check_pts(index: FileIndex, indices: Sequence[int], got_seconds: Sequence[float], backend: str) -> None:
    """Raise unless the decoded frames carry the pts the index says they must have."""
    want = index.seconds[np.asarray(indices, dtype=np.int64)]
    got = np.asarray(got_seconds, dtype=np.float64)
    if got.shape != want.shape:
        raise BackendDecodeError(f"{backend} returned {got.shape[0]} frames for {want.shape[0]} requested")
    period = index.frame_period
    tol = min(1e-4, 0.25 * period) if np.isfinite(period) else 1e-4
    bad = np.nonzero(np.abs(got - want) > tol)[0]
    if len(bad):
        i = int(bad[0])
        raise BackendDecodeError(
            f"{backend} returned the frame at pts {got[i]:.6f}s for frame {int(indices[i])} "
            f"(pts {want[i]:.6f}s); {len(bad)} of {len(want)} frames differ"
        )
