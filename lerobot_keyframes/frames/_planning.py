"""Request planning: episode-relative times resolved to frames of a file, and decoded entries assembled.

A requested time t of an episode maps to the frame of the camera's file whose presentation time is nearest
to `from_timestamp + t`, accepted within a tolerance, using the file's real pts table (video) or the data
parquet's timestamps (image-stored cameras). A time that has no such frame becomes an error entry (raised
at once with `on_error="raise"`), never a neighbour's frame.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..utils.timeline import nearest_frame_index
from .config import OnError, ProviderConfig
from .errors import FrameDecodeError, FrameTimeError
from .types import Frames

if TYPE_CHECKING:
    import torch

    from ..dataset.records import CameraRef, Episode
    from ..dataset.remote import HubFile
    from .decoders.images import ParquetImageSource
    from .decoders.index import FileIndex

logger = logging.getLogger(__name__)


@dataclass
class Entry:
    """One requested time, resolved to a frame of a file (or to an error)."""

    t: float
    frame: int = -1  # frame index in the file (video) or row position in the data parquet (image)
    pts: float = math.nan
    episode_frame: int = -1
    error: FrameDecodeError | None = None
    data: torch.Tensor | None = None  # H x W x C uint8 once decoded (or from the cache)
    batch: torch.Tensor | None = None  # the N x H x W x C batch `data` is a row of, and its position there
    pos: int = -1


@dataclass
class Request:
    """One (episode, camera, times) request: its file and its entries, in the caller's order."""

    episode: int
    camera: str
    kind: str  # "video" | "image" (the camera's storage)
    file: str  # absolute path
    from_timestamp: float
    entries: list[Entry] = field(default_factory=list)
    error: FrameDecodeError | None = None
    video_backend: str = ""  # what delivered the frames: a decoder's name, "image" or "cache"
    index: FileIndex | None = None  # the pts table the entries were resolved against (video)
    remote: HubFile | None = None  # the Hub file read by byte range (None: `file` is on disk)
    span: tuple[int, int] = (0, 0)  # the episode's frames in the file's index: [first, stop)

    def file_error(self, cls: type[FrameDecodeError], reason: str,
                   video_backend: str | None = None) -> FrameDecodeError:
        """An error of the whole request, naming its file, episode, camera and times."""
        return cls(reason, file=self.file, episode=self.episode, camera=self.camera,
                   times=[e.t for e in self.entries], video_backend=video_backend)

    def entry_error(self, entry: Entry, reason: str, on_error: OnError) -> None:
        """Mark one entry failed (raised at once with `on_error="raise"`)."""
        err = FrameTimeError(reason, file=self.file, episode=self.episode, camera=self.camera, time=entry.t)
        if on_error == "raise":
            raise err
        entry.error = err

    def retarget(self, exc: FrameDecodeError, entry: Entry) -> FrameDecodeError:
        """The same failure, named for one entry of this request (a batch may span several episodes)."""
        err = type(exc)(exc.reason, file=self.file, episode=self.episode, camera=self.camera, time=entry.t,
                        video_backend=exc.video_backend)
        if hasattr(exc, "status"):  # a Hub read's HTTP status
            err.status = exc.status  # type: ignore[attr-defined]
        return err


def tolerance(config: ProviderConfig, camera: CameraRef, episode: Episode) -> float:
    if config.tolerance_s is not None:
        return float(config.tolerance_s)
    return config.tolerance_frames / float(camera.fps or episode.fps)


def episode_end(episode: Episode) -> float:
    """The time of the episode's last frame (its exact timestamp when the record carries them)."""
    if len(episode.timestamps):
        return float(episode.timestamps[-1])
    return (episode.length - 1) / episode.fps


def resolve_video(req: Request, episode: Episode, index: FileIndex, tol: float, on_error: OnError) -> None:
    """Resolve every entry against the file's pts table; the episode's span must fit in the stream."""
    req.index = index
    last_t = episode_end(episode)
    first = int(index.nearest(np.asarray([req.from_timestamp]))[0])
    req.span = (first, min(len(index), first + episode.length))
    if abs(index.seconds[first] - req.from_timestamp) > tol:
        raise req.file_error(
            FrameTimeError,
            f"no frame within {tol:.4f}s of the episode start (from_timestamp {req.from_timestamp:.6f}s); "
            f"nearest frame at {index.seconds[first]:.6f}s. Is the video shorter than the metadata says?",
        )
    end = req.from_timestamp + last_t  # the metadata's episode must fit in the stream it names
    if len(index.seconds) and end > float(index.seconds[-1]) + tol:
        raise req.file_error(
            FrameTimeError,
            f"the episode's last frame is at file time {end:.6f}s (from_timestamp {req.from_timestamp:.6f}s + "
            f"{last_t:.6f}s) but the stream ends at {float(index.seconds[-1]):.6f}s: the video is shorter than "
            "meta/episodes says (to_timestamp / length)",
        )
    targets = np.asarray([e.t for e in req.entries], dtype=np.float64) + req.from_timestamp
    nearest_arr = index.nearest(targets)
    nearest, found = nearest_arr.tolist(), index.seconds[nearest_arr].tolist()
    for entry, target, idx, pts in zip(req.entries, targets.tolist(), nearest, found):
        if not math.isfinite(entry.t) or entry.t < -tol or entry.t > last_t + tol:
            req.entry_error(entry, f"time is outside the episode [0, {last_t:.6f}]s (tolerance {tol:.4f}s)", on_error)
        elif abs(pts - target) > tol:
            req.entry_error(entry, f"no frame within {tol:.4f}s of file time {target:.6f}s (nearest frame at "
                                   f"{pts:.6f}s); the video may be truncated or have missing frames", on_error)
        elif not 0 <= idx - first < episode.length:
            req.entry_error(entry, f"the nearest frame ({idx - first} of the episode) is outside the episode",
                            on_error)
        else:
            entry.frame, entry.pts, entry.episode_frame = idx, pts, idx - first


def resolve_image(req: Request, episode: Episode, source: ParquetImageSource, tol: float, on_error: OnError) -> None:
    """Resolve every entry against the data parquet's timestamps of an image-stored camera."""
    rows = source.rows_of(episode.dataset_from_index, episode.dataset_to_index)
    if len(rows) != episode.length:
        raise req.file_error(FrameDecodeError, f"the data parquet holds {len(rows)} frames of the episode, "
                                               f"metadata says {episode.length}")
    ts = source.timestamps[rows].astype(np.float64)
    last_t = float(ts[-1]) if len(ts) else -math.inf
    for entry in req.entries:
        if not math.isfinite(entry.t) or entry.t < -tol or entry.t > last_t + tol or not len(ts):
            req.entry_error(entry, f"time is outside the episode [0, {last_t:.6f}]s (tolerance {tol:.4f}s)", on_error)
            continue
        pos = nearest_frame_index(ts, entry.t)
        if abs(ts[pos] - entry.t) > tol:
            req.entry_error(entry, f"no frame within {tol:.4f}s (nearest at {ts[pos]:.6f}s)", on_error)
            continue
        entry.frame, entry.pts, entry.episode_frame = int(rows[pos]), float(ts[pos]), pos


def assemble(req: Request, on_error: OnError, stack: Callable[[list[torch.Tensor]], torch.Tensor]) -> Frames:
    """The `Frames` of a decoded request: one tensor when every entry holds a frame, else a list."""
    entries = req.entries
    if req.error is not None:
        logger.warning("%s", req.error)
        for entry in entries:
            entry.error = entry.error or req.error
    failed = [e for e in entries if e.data is None]
    if failed and on_error == "raise":  # defensive: errors were raised earlier
        raise failed[0].error or FrameDecodeError("frame was not decoded", file=req.file, episode=req.episode,
                                                  camera=req.camera, time=failed[0].t)
    for e in failed:
        if e.error is not None and req.error is None:
            logger.warning("%s", e.error)
    data = _stacked(entries, stack) if not failed else [
        e.data.permute(2, 0, 1) if e.data is not None else None for e in entries
    ]
    ok = [e.data is not None for e in entries]
    return Frames(
        data=data,
        requested=tuple(e.t for e in entries),
        timestamps=tuple((e.pts - req.from_timestamp) if k else math.nan for e, k in zip(entries, ok)),
        pts=tuple(e.pts if k else math.nan for e, k in zip(entries, ok)),
        indices=tuple(e.episode_frame if k else -1 for e, k in zip(entries, ok)),
        camera=req.camera,
        episode_index=req.episode,
        file=req.file,
        video_backend=req.video_backend,
        errors=tuple(None if k else str(e.error) for e, k in zip(entries, ok)) if failed else (),
    )


def _stacked(entries: Sequence[Entry], stack: Callable[[list[torch.Tensor]], torch.Tensor]) -> torch.Tensor:
    import torch

    batch = entries[0].batch if entries else None
    if batch is not None and len(batch) == len(entries) and all(
        e.batch is batch and e.pos == i for i, e in enumerate(entries)
    ):
        return batch.permute(0, 3, 1, 2)  # exactly one decoded batch, in order: no copy
    if entries:
        return stack([e.data for e in entries]).permute(0, 3, 1, 2)  # type: ignore[misc]
    return torch.empty((0, 3, 0, 0), dtype=torch.uint8)
