"""Frame providers: episode-relative times in, the exact video frames out.

A requested time t of an episode maps to the frame of the camera's file whose presentation time is
nearest to `from_timestamp + t`, accepted within a tolerance (default 0.4 frame period), using the
file's real pts table. The chosen frames are decoded by frame index in one batch call per file and
checked against the pts table, so float32 dataset times a hair below or above a frame's pts land on
that frame, never on a neighbour.

Concurrency: no lock on the decode path. Every thread (and process) has its own small LRU of open
decoders, created lazily where it is used (after fork, after unpickling); with `cache_bytes` > 0 frames
also land in a shared, byte-bounded, thread-safe LRU cache (off by default). The provider pickles to its
configuration plus the episode rows, so it can be shipped to `datasets.map(num_proc=k)` workers and hashed
for a stable fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..utils.fork import torch_fork_guard
from ..utils.timeline import evenly_spaced, nearest_frame_index, split_evenly
from .cache import CacheStats, FrameCache
from .decoders.base import BACKENDS, BackendDecodeError, backend_available
from .errors import (
    BackendUnavailableError,
    DecoderCrashError,
    FrameDecodeError,
    FrameTimeError,
    UnknownCameraError,
    VideoFileMissingError,
)
from .types import Frames

if TYPE_CHECKING:
    import torch

    from .decoders.index import FileIndex

logger = logging.getLogger(__name__)

# Off by default: most callers (datasets.map, review, benchmarks) ask for each frame once, and a cache
# would copy every decoded frame for nothing (a quarter of the cold-path time on small frames, and 90 MiB
# of peak RSS at 720p). Callers that ask again for the same frames turn it on, e.g. the annotation
# pipeline (`AnnotateConfig.frame_cache_mb`, its modules share keyframes).
DEFAULT_CACHE_BYTES = 0
DEFAULT_MAX_OPEN_DECODERS = 8
DEFAULT_TOLERANCE_FRAMES = 0.4
ON_ERROR = ("raise", "none")

EpisodeRef = Mapping[str, Any] | int

@dataclass(frozen=True)
class ProviderConfig:
    """Everything that shapes a provider's output or behaviour (and its fingerprint)."""

    backend: str = "auto"
    camera_key: str | None = None
    tolerance_s: float | None = None  # absolute tolerance; None: tolerance_frames / camera fps
    tolerance_frames: float = DEFAULT_TOLERANCE_FRAMES
    cache_bytes: int = DEFAULT_CACHE_BYTES
    max_open_decoders: int = DEFAULT_MAX_OPEN_DECODERS
    isolate: bool = False
    isolate_workers: int = 2
    workers: int = 1  # threads decoding one call's frames in parallel (each with its own decoders)
    on_error: str = "raise"
    decoder_threads: int = 1
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.backend not in (*BACKENDS, "auto"):
            raise ValueError(f"backend must be one of {(*BACKENDS, 'auto')}, got {self.backend!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")
        if self.tolerance_s is not None and not self.tolerance_s >= 0:
            raise ValueError(f"tolerance_s must be >= 0, got {self.tolerance_s}")
        if not 0 <= self.tolerance_frames <= 0.5:
            raise ValueError(f"tolerance_frames must be within [0, 0.5] frame periods, got {self.tolerance_frames}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.max_open_decoders < 1:
            raise ValueError(f"max_open_decoders must be >= 1, got {self.max_open_decoders}")
        if self.cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {self.cache_bytes}")


@runtime_checkable
class FrameProvider(Protocol):
    """What keyframe policies, content blocks and the datasets transform code against."""

    camera_keys: list[str]
    default_camera: str | None

    def frames_at(self, episode: EpisodeRef, timestamps: Sequence[float], camera: str | None = None) -> Frames: ...

    def video_for_episode(self, episode: EpisodeRef, max_frames: int, camera: str | None = None) -> Frames: ...


class NullProvider:
    """Provider of a dataset without cameras: every frame request is an error (never silently no images)."""

    camera_keys: list[str]
    default_camera: str | None

    def __init__(self, source: str | None = None) -> None:
        self.camera_keys = []
        self.default_camera = None
        self.source = source

    def frames_at(self, episode: EpisodeRef, timestamps: Sequence[float], camera: str | None = None) -> Frames:
        ep = episode if isinstance(episode, int) else int(episode.get("episode_index", -1))
        raise UnknownCameraError(
            "the dataset has no (non-depth) cameras; nothing to decode",
            file=self.source, episode=ep, camera=camera, times=[float(t) for t in timestamps],
        )

    def video_for_episode(self, episode: EpisodeRef, max_frames: int, camera: str | None = None) -> Frames:
        return self.frames_at(episode, [], camera)

    def fingerprint(self) -> str:
        return hashlib.sha256(b"NullProvider").hexdigest()[:16]

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------------------------------
# episode rows


def _slim_camera(cam: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "key": str(cam["key"]),
        "storage": str(cam.get("storage") or "video"),
        "path": str(cam["path"]),
        "from_timestamp": float(cam.get("from_timestamp") or 0.0),
        "to_timestamp": None if cam.get("to_timestamp") is None else float(cam["to_timestamp"]),
        "fps": None if cam.get("fps") is None else float(cam["fps"]),
    }


def _slim_row(row: Mapping[str, Any], *, keep_timestamps: bool) -> dict[str, Any]:
    """The fields a provider needs from an episode row (see `lerobot_keyframes.dataset.episodes`)."""
    try:
        out: dict[str, Any] = {
            "episode_index": int(row["episode_index"]),
            "length": int(row["length"]),
            "fps": float(row["fps"]),
            "root": str(row["root"]),
            "data_file": None if row.get("data_file") is None else str(row["data_file"]),
            "dataset_from_index": int(row.get("dataset_from_index") or 0),
            "dataset_to_index": int(row.get("dataset_to_index") or 0),
            "cameras": [_slim_camera(c) for c in (row.get("cameras") or [])],
        }
    except KeyError as exc:
        raise ValueError(f"episode row lacks field {exc}; expected a row of lerobot_keyframes.load_episodes") from exc
    ts = row.get("timestamps")
    out["timestamps"] = np.asarray(ts, dtype=np.float32) if (keep_timestamps and ts is not None) else None
    return out


def _rows_from(source: Any, episodes: Sequence[int] | None) -> tuple[list[dict[str, Any]], str | None]:
    """Episode rows from a dataset root / repo id, a `datasets.Dataset` episode table, or row dicts."""
    if isinstance(source, (str, Path)):
        from ..dataset import DatasetLayout, build_episode_rows, load_episodes
        from ..dataset.source import is_local

        if is_local(source):
            layout = DatasetLayout.open(source)
            return build_episode_rows(layout, episodes=episodes), str(layout.root)
        table = load_episodes(str(source), episodes=episodes, download_videos=True)
        return table.to_list(), str(source)
    if hasattr(source, "column_names") and hasattr(source, "to_list"):  # datasets.Dataset
        missing = {"episode_index", "cameras", "root"} - set(source.column_names)
        if missing:
            raise ValueError(f"the Dataset is not an episode table (missing columns {sorted(missing)})")
        rows = source.to_list()
    elif isinstance(source, Mapping):
        rows = [source]
    else:
        rows = list(source)
    if episodes is not None:
        wanted = {int(e) for e in episodes}
        rows = [r for r in rows if int(r["episode_index"]) in wanted]
    return rows, None


# ------------------------------------------------------------------------------------------------
# per-thread decoder store


class _DecoderStore:
    """One thread's open decoders, LRU-bounded. Never shared between threads or processes."""

    def __init__(self, max_open: int) -> None:
        self.pid = os.getpid()
        self.max_open = max_open
        self._open: OrderedDict[tuple, Any] = OrderedDict()

    def get(self, key: tuple, factory: Any) -> Any:
        dec = self._open.pop(key, None)
        if dec is None:
            dec = factory()
        self._open[key] = dec
        while len(self._open) > self.max_open:
            _, old = self._open.popitem(last=False)
            try:
                old.close()
            except Exception:
                pass
        return dec

    def drop(self, key: tuple) -> None:
        dec = self._open.pop(key, None)
        if dec is not None:
            try:
                dec.close()
            except Exception:
                pass

    def __len__(self) -> int:
        return len(self._open)

    def close(self) -> None:
        for key in list(self._open):
            self.drop(key)


# ------------------------------------------------------------------------------------------------
# request planning


@dataclass
class _Entry:
    """One requested time, resolved to a frame of a file (or to an error)."""

    t: float
    frame: int = -1  # frame index in the file (video) or row position in the data parquet (image)
    pts: float = math.nan
    episode_frame: int = -1
    error: FrameDecodeError | None = None
    data: Any = None  # H x W x C uint8 tensor once decoded (or from the cache)
    batch: Any = None  # the N x H x W x C batch `data` is a row of, and its position there
    pos: int = -1


@dataclass
class _Request:
    episode: int
    camera: str
    kind: str  # "video" | "image"
    file: str  # absolute path
    from_timestamp: float
    entries: list[_Entry] = field(default_factory=list)
    error: FrameDecodeError | None = None
    backend: str = ""
    index: FileIndex | None = None  # the pts table the entries were resolved against (video)


@dataclass
class ProviderStats:
    cache: CacheStats
    decoded_frames: dict[str, int]
    decode_calls: dict[str, int]
    open_decoders_this_thread: int


class VideoFrameProvider:
    """The FrameProvider of a LeRobot v3 dataset (video cameras and image-stored cameras).

    Build it with `make_frame_provider`. `episode` arguments are an episode index (looked up in the
    provider's episode table) or an episode row dict from `load_episodes` (self-contained: its own
    root and cameras are used, so `datasets.map` workers that only see rows can decode).
    """

    def __init__(
        self, rows: Sequence[Mapping[str, Any]], config: ProviderConfig | None = None, *, source: str | None = None
    ) -> None:
        self.config = config or ProviderConfig()
        self.source = source
        self._rows: dict[int, dict[str, Any]] = {}
        keys: list[str] = []
        for row in rows:
            slim = _slim_row(row, keep_timestamps=False)
            self._rows[slim["episode_index"]] = slim
            for cam in slim["cameras"]:
                if cam["key"] not in keys:
                    keys.append(cam["key"])
        self.camera_keys = keys
        if self.config.camera_key is not None and self.config.camera_key not in keys and keys:
            raise UnknownCameraError(
                f"unknown camera {self.config.camera_key!r}; the dataset has {keys}", file=source,
                camera=self.config.camera_key,
            )
        self.default_camera = self.config.camera_key or (keys[0] if keys else None)
        _check_backend(self.config.backend)
        self._init_runtime()

    # -- runtime state (never pickled) -----------------------------------------------------------
    def _init_runtime(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._cache = FrameCache(self.config.cache_bytes)
        self._stats_lock = threading.Lock()
        self._decoded: dict[str, int] = {}
        self._calls: dict[str, int] = {}
        self._isolation: Any = None
        self._isolation_lock = threading.Lock()
        self._pool: Any = None
        self._timestamps_cache: dict[tuple[str, int], np.ndarray] = {}

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # inherited through fork without pickling: start clean
            self._init_runtime()

    def __getstate__(self) -> dict[str, Any]:
        rows = [self._rows[k] for k in sorted(self._rows)]
        return {"config": asdict(self.config), "source": self.source, "rows": rows}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = ProviderConfig(**state["config"])
        self.source = state["source"]
        self._rows = {r["episode_index"]: r for r in state["rows"]}
        keys: list[str] = []
        for r in state["rows"]:
            for cam in r["cameras"]:
                if cam["key"] not in keys:
                    keys.append(cam["key"])
        self.camera_keys = keys
        self.default_camera = self.config.camera_key or (keys[0] if keys else None)
        self._init_runtime()

    def fingerprint(self) -> str:
        """A stable hash of the configuration and the episodes served (same inputs: same string)."""
        payload = self.__getstate__()
        text = json.dumps(payload, sort_keys=True, default=_json_default)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"VideoFrameProvider(episodes={len(self._rows)}, cameras={self.camera_keys}, "
            f"backend={self.config.backend!r}, isolate={self.config.isolate})"
        )

    # -- public API --------------------------------------------------------------------------------
    @property
    def episode_indices(self) -> list[int]:
        return sorted(self._rows)

    def frames_at(self, episode: EpisodeRef, timestamps: Sequence[float], camera: str | None = None) -> Frames:
        """Frames of `camera` (default: the provider's default camera) at episode-relative times."""
        return self.frames_at_many([(episode, timestamps, camera)])[0]

    def frames_at_many(self, requests: Iterable[tuple[EpisodeRef, Sequence[float], str | None]]) -> list[Frames]:
        """Several (episode, timestamps, camera) requests at once: frames of the same file are merged,
        sorted and decoded in one batch call. One `Frames` per request, in order."""
        self._check_process()
        torch_fork_guard()
        plans = [self._plan(episode, timestamps, camera) for episode, timestamps, camera in requests]
        self._fill_from_cache(plans)
        self._decode_missing(plans)
        return [self._assemble(p) for p in plans]

    def iter_frames_at(
        self, episode: EpisodeRef, timestamps: Sequence[float], camera: str | None = None, *, batch_size: int = 32
    ) -> Iterator[Frames]:
        """`frames_at` in consecutive chunks of `batch_size` times, so memory stays bounded by the chunk
        (plus the cache) however long the episode: e.g. every frame at 1 Hz over an hour of video."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        times = list(timestamps)
        for start in range(0, len(times), batch_size):
            yield self.frames_at(episode, times[start : start + batch_size], camera)

    def video_for_episode(self, episode: EpisodeRef, max_frames: int, camera: str | None = None) -> Frames:
        """`max_frames` frames spread uniformly over the episode by frame index, first and last included."""
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        row = self._row(episode)
        ts = self.episode_timestamps(row)
        n = len(ts)
        if n == 0:
            raise FrameTimeError("the episode has no frames", file=self._episode_file(row, camera),
                                 episode=row["episode_index"], camera=camera or self.default_camera)
        k = min(int(max_frames), n)
        positions = evenly_spaced(n, k).tolist()
        return self.frames_at(row if isinstance(episode, Mapping) else episode, [float(ts[i]) for i in positions], camera)

    def episode_timestamps(self, episode: EpisodeRef) -> np.ndarray:
        """The episode's exact float32 frame timestamps (from the row, else from its data parquet)."""
        if isinstance(episode, Mapping) and episode.get("timestamps") is not None:
            return np.asarray(episode["timestamps"], dtype=np.float32)
        row = self._row(episode)
        key = (row["root"], row["episode_index"])
        cached = self._timestamps_cache.get(key)
        if cached is not None:
            return cached
        ts = _read_episode_timestamps(row)
        self._timestamps_cache[key] = ts
        return ts

    @property
    def cache(self) -> FrameCache:
        return self._cache

    def stats(self) -> ProviderStats:
        with self._stats_lock:
            decoded, calls = dict(self._decoded), dict(self._calls)
        store = getattr(self._local, "store", None)
        return ProviderStats(self._cache.stats(), decoded, calls, len(store) if store is not None else 0)

    def close(self) -> None:
        """Close this thread's decoders and any worker processes (other threads' decoders close with them)."""
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
        if self._isolation is not None:
            self._isolation.close()
            self._isolation = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> VideoFrameProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolution ----------------------------------------------------------------------------------
    def _row(self, episode: EpisodeRef) -> dict[str, Any]:
        if isinstance(episode, Mapping):
            return _slim_row(episode, keep_timestamps=True)
        if isinstance(episode, (int, np.integer)):
            row = self._rows.get(int(episode))
            if row is None:
                raise FrameDecodeError(
                    f"episode {int(episode)} is not served by this provider (it has {len(self._rows)} episodes: "
                    f"{_short_list(sorted(self._rows))}); pass the episode row instead",
                    file=self.source, episode=int(episode),
                )
            return row
        raise TypeError(f"episode must be an episode index or an episode row dict, got {type(episode).__name__}")

    def _camera(self, row: dict[str, Any], camera: str | None, times: Sequence[float]) -> dict[str, Any]:
        key = camera or self.default_camera
        for cam in row["cameras"]:
            if cam["key"] == key:
                return cam
        raise UnknownCameraError(
            f"unknown camera {key!r}; episode {row['episode_index']} has {[c['key'] for c in row['cameras']]}",
            file=row["root"], episode=row["episode_index"], camera=key, times=times,
        )

    def _episode_file(self, row: dict[str, Any], camera: str | None) -> str | None:
        key = camera or self.default_camera
        for cam in row["cameras"]:
            if cam["key"] == key:
                return os.path.join(row["root"], cam["path"])
        return row["root"]

    def _tolerance(self, cam: dict[str, Any], row: dict[str, Any]) -> float:
        if self.config.tolerance_s is not None:
            return float(self.config.tolerance_s)
        fps = cam.get("fps") or row["fps"]
        return self.config.tolerance_frames / float(fps)

    def _plan(self, episode: EpisodeRef, timestamps: Sequence[float], camera: str | None) -> _Request:
        times = [float(t) for t in np.asarray(timestamps, dtype=np.float64).reshape(-1)] if len(timestamps) else []
        try:
            row = self._row(episode)
            cam = self._camera(row, camera, times)
        except FrameDecodeError as exc:
            if self.config.on_error == "raise":
                raise
            ep = episode if isinstance(episode, int) else int(dict(episode).get("episode_index", -1))
            req = _Request(ep, camera or self.default_camera or "", "video", exc.file or "", 0.0,
                           [_Entry(t) for t in times], error=exc)
            return req
        path = os.path.join(row["root"], cam["path"])
        req = _Request(row["episode_index"], cam["key"], cam["storage"], path, cam["from_timestamp"],
                       [_Entry(t) for t in times])
        if not times:
            return req
        tol = self._tolerance(cam, row)
        try:
            if cam["storage"] == "image":
                self._resolve_image(req, row, tol)
            else:
                self._resolve_video(req, row, cam, tol)
        except FrameDecodeError as exc:
            if self.config.on_error == "raise":
                raise
            req.error = exc
        return req

    def _file_error(self, req: _Request, cls: type[FrameDecodeError], reason: str, backend: str | None = None) -> FrameDecodeError:
        return cls(reason, file=req.file, episode=req.episode, camera=req.camera,
                   times=[e.t for e in req.entries], backend=backend)

    def _entry_error(self, req: _Request, entry: _Entry, reason: str) -> None:
        err = FrameTimeError(reason, file=req.file, episode=req.episode, camera=req.camera, time=entry.t)
        if self.config.on_error == "raise":
            raise err
        entry.error = err

    def _file_index(self, req: _Request) -> FileIndex:
        from .decoders.index import build_file_index, file_index

        builder = None
        if self.config.isolate:
            builder = self._isolated().file_index
        try:
            return file_index(req.file, builder or build_file_index)
        except FileNotFoundError as exc:
            raise self._file_error(req, VideoFileMissingError, "video file is missing") from exc
        except BackendDecodeError as exc:
            raise self._file_error(req, FrameDecodeError, f"cannot index the video: {exc}") from exc
        except _worker_crash_types() as exc:
            raise self._file_error(req, DecoderCrashError, f"indexing the video crashed its process: {exc}") from exc

    def _resolve_video(self, req: _Request, row: dict[str, Any], cam: dict[str, Any], tol: float) -> None:
        index = req.index = self._file_index(req)
        last_t = (row["length"] - 1) / row["fps"]
        if row.get("timestamps") is not None and len(row["timestamps"]):
            last_t = float(row["timestamps"][-1])
        first = int(index.nearest(np.asarray([req.from_timestamp]))[0])
        if abs(index.seconds[first] - req.from_timestamp) > tol:
            raise self._file_error(
                req, FrameTimeError,
                f"no frame within {tol:.4f}s of the episode start (from_timestamp {req.from_timestamp:.6f}s); "
                f"nearest frame at {index.seconds[first]:.6f}s. Is the video shorter than the metadata says?",
            )
        end = req.from_timestamp + last_t  # the metadata's episode must fit in the stream it names
        if len(index.seconds) and end > float(index.seconds[-1]) + tol:
            raise self._file_error(
                req, FrameTimeError,
                f"the episode's last frame is at file time {end:.6f}s (from_timestamp {req.from_timestamp:.6f}s + "
                f"{last_t:.6f}s) but the stream ends at {float(index.seconds[-1]):.6f}s: the video is shorter than "
                "meta/episodes says (to_timestamp / length)",
            )
        targets = np.asarray([e.t for e in req.entries], dtype=np.float64) + req.from_timestamp
        nearest_arr = index.nearest(targets)
        nearest, found = nearest_arr.tolist(), index.seconds[nearest_arr].tolist()
        length = row["length"]
        for entry, target, idx, pts in zip(req.entries, targets.tolist(), nearest, found):
            if not math.isfinite(entry.t) or entry.t < -tol or entry.t > last_t + tol:
                self._entry_error(req, entry, f"time is outside the episode [0, {last_t:.6f}]s (tolerance {tol:.4f}s)")
                continue
            if abs(pts - target) > tol:
                self._entry_error(
                    req, entry,
                    f"no frame within {tol:.4f}s of file time {target:.6f}s (nearest frame at "
                    f"{pts:.6f}s); the video may be truncated or have missing frames",
                )
                continue
            ep_frame = idx - first
            if not 0 <= ep_frame < length:
                self._entry_error(req, entry, f"the nearest frame ({ep_frame} of the episode) is outside the episode")
                continue
            entry.frame = idx
            entry.pts = pts
            entry.episode_frame = ep_frame

    def _resolve_image(self, req: _Request, row: dict[str, Any], tol: float) -> None:
        source = self._image_source(req)
        rows = source.rows_of(row["dataset_from_index"], row["dataset_to_index"])
        if len(rows) != row["length"]:
            raise self._file_error(
                req, FrameDecodeError,
                f"the data parquet holds {len(rows)} frames of the episode, metadata says {row['length']}",
            )
        ts = source.timestamps[rows].astype(np.float64)
        last_t = float(ts[-1]) if len(ts) else -math.inf
        for entry in req.entries:
            if not math.isfinite(entry.t) or entry.t < -tol or entry.t > last_t + tol or not len(ts):
                self._entry_error(req, entry, f"time is outside the episode [0, {last_t:.6f}]s (tolerance {tol:.4f}s)")
                continue
            pos = nearest_frame_index(ts, entry.t)
            if abs(ts[pos] - entry.t) > tol:
                self._entry_error(req, entry, f"no frame within {tol:.4f}s (nearest at {ts[pos]:.6f}s)")
                continue
            entry.frame = int(rows[pos])
            entry.pts = float(ts[pos])
            entry.episode_frame = pos

    # -- decoding ------------------------------------------------------------------------------------
    def _store(self) -> _DecoderStore:
        store = getattr(self._local, "store", None)
        if store is None or store.pid != os.getpid():
            store = _DecoderStore(self.config.max_open_decoders)
            self._local.store = store
        return store

    def _isolated(self) -> Any:
        if self._isolation is None:
            with self._isolation_lock:
                if self._isolation is None:
                    from .isolate import IsolatedDecoding

                    self._isolation = IsolatedDecoding(
                        self.config.backend, threads=self.config.decoder_threads,
                        max_open=self.config.max_open_decoders, max_workers=self.config.isolate_workers,
                        timeout_s=self.config.timeout_s,
                    )
        return self._isolation

    def _image_source(self, req: _Request) -> Any:
        from .decoders.images import ParquetImageSource

        if not os.path.exists(req.file):
            raise self._file_error(req, VideoFileMissingError, "data parquet (image camera) is missing")
        try:
            return self._store().get(("image", req.file, req.camera), lambda: ParquetImageSource(req.file, req.camera))
        except BackendDecodeError as exc:
            raise self._file_error(req, FrameDecodeError, str(exc), backend="image") from exc

    def _cache_key(self, req: _Request, entry: _Entry) -> tuple:
        return (req.file, req.episode, req.camera, entry.frame)

    def _fill_from_cache(self, plans: list[_Request]) -> None:
        if self._cache.max_bytes == 0:
            return
        for req in plans:
            if req.error is not None:
                continue
            for entry in req.entries:
                if entry.frame >= 0 and entry.error is None:
                    entry.data = self._cache.get(self._cache_key(req, entry))

    def _decode_missing(self, plans: list[_Request]) -> None:
        by_file: dict[tuple[str, str, str], list[tuple[_Request, _Entry]]] = {}
        for req in plans:
            if req.error is not None:
                continue
            for entry in req.entries:
                if entry.frame >= 0 and entry.error is None and entry.data is None:
                    key = (req.kind, req.file, req.camera if req.kind == "image" else "")
                    by_file.setdefault(key, []).append((req, entry))
        tasks: list[tuple[str, list, list[int]]] = []
        groups: list[tuple[str, str, str]] = []  # the by_file key of each task
        for key, members in by_file.items():
            frames = sorted({e.frame for _, e in members})
            chunks = self._split(frames)
            for chunk in chunks:  # with several chunks, each task fills only the entries of its own frames
                wanted = set(chunk)
                mine = members if len(chunks) == 1 else [(r, e) for r, e in members if e.frame in wanted]
                tasks.append((key[0], mine, chunk))
                groups.append(key)
        failed: dict[tuple[str, str, str], FrameDecodeError] = {}
        for key, result in zip(groups, self._run_tasks(tasks)):
            if isinstance(result, FrameDecodeError):
                failed.setdefault(key, result)
        for key, failure in failed.items():
            if self.config.on_error == "raise":
                raise failure
            for req, entry in by_file[key]:  # one failed chunk fails the file's whole request: no partial files
                entry.error = _retarget(failure, req, entry)
                entry.data = entry.batch = None
        for req in plans:
            if not req.backend and any(e.data is not None for e in req.entries):
                req.backend = "cache"

    def _split(self, frames: list[int]) -> list[list[int]]:
        """One file's sorted frames in `workers` contiguous chunks (a chunk per thread)."""
        if min(self.config.workers, len(frames)) <= 1:
            return [frames]
        return [frames[a:b] for a, b in split_evenly(len(frames), self.config.workers)]

    def _place(
        self, members: list[tuple[_Request, _Entry]], chunk: list[int], data: Any, backend: str, n_tasks: int
    ) -> None:
        # decoders return N x C x H x W views over N x H x W x C memory (like torchcodec): keep rows as
        # H x W x C so caching and stacking are plain memory copies, never per-pixel transposes
        nhwc = data.permute(0, 2, 3, 1)
        if not nhwc.is_contiguous():
            nhwc = nhwc.contiguous()
        pos = {f: i for i, f in enumerate(chunk)}
        # a call larger than the cache would evict its own frames while inserting them: copy only the
        # last ones of each chunk, which are what an LRU would keep anyway
        row_bytes = nhwc[0].numel() if len(nhwc) else 1
        keep_from = len(chunk) - self._cache.max_bytes // row_bytes // max(1, n_tasks)
        for req, entry in members:
            entry.batch, entry.pos = nhwc, pos[entry.frame]
            entry.data = nhwc[entry.pos]
            req.backend = backend
            if entry.pos >= keep_from:
                self._cache.put(self._cache_key(req, entry), entry.data)

    def _run_tasks(self, tasks: list[tuple[str, list, list[int]]]) -> list[Any]:
        """Decode every (kind, members, frames) task; results are (data, backend) or the FrameDecodeError.
        With workers > 1 the tasks run on a thread pool (the caller's thread takes the first one)."""

        def run(task: tuple[str, list, list[int]]) -> Any:
            kind, members, chunk = task
            try:
                data, backend = self._decode_file(kind, members[0][0], chunk)
            except FrameDecodeError as exc:
                return exc
            self._place(members, chunk, data, backend, len(tasks))  # on the decoding thread: copies in parallel
            return backend

        if self.config.workers <= 1 or len(tasks) <= 1:
            return [run(t) for t in tasks]
        if self._pool is None:
            with self._isolation_lock:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(self.config.workers - 1, thread_name_prefix="frames")
        futures = [self._pool.submit(run, t) for t in tasks[1:]]
        return [run(tasks[0])] + [f.result() for f in futures]

    def _decode_file(self, kind: str, req: _Request, frames: list[int]) -> tuple[torch.Tensor, str]:
        if kind == "image":
            source = self._image_source(req)
            try:
                data = source.decode_rows(frames)
            except BackendDecodeError as exc:
                raise self._file_error(req, FrameDecodeError, str(exc), backend="image") from exc
            self._count("image", len(frames))
            return data, "image"
        backend = self.config.backend
        if self.config.isolate:
            try:
                data, name = self._isolated().decode(req.file, frames)
            except FileNotFoundError as exc:
                raise self._file_error(req, VideoFileMissingError, "video file is missing") from exc
            except BackendDecodeError as exc:
                raise self._file_error(req, FrameDecodeError, f"decoding failed: {exc}", backend=backend) from exc
            except _worker_crash_types() as exc:
                raise self._file_error(
                    req, DecoderCrashError, f"the isolated decoder crashed: {exc}", backend=backend
                ) from exc
            self._count(name, len(frames))
            return data, name
        from .decoders import open_decoder

        index = req.index or self._file_index(req)  # frame numbers refer to the table they were resolved in
        store = self._store()
        key = ("video", req.file, backend)
        try:
            decoder = store.get(key, lambda: open_decoder(backend, req.file, index, threads=self.config.decoder_threads))
            if getattr(decoder, "index", index) is not index:  # the file changed on disk since it was opened
                store.drop(key)
                decoder = store.get(key, lambda: open_decoder(backend, req.file, index, threads=self.config.decoder_threads))
            data = decoder.decode(frames)
        except BackendDecodeError as exc:
            store.drop(key)
            raise self._file_error(req, FrameDecodeError, f"decoding failed: {exc}", backend=backend) from exc
        self._count(decoder.name, len(frames))
        return data, decoder.name

    def _gather(self, rows: list[Any]) -> Any:
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

    def _count(self, backend: str, n: int) -> None:
        with self._stats_lock:
            self._decoded[backend] = self._decoded.get(backend, 0) + n
            self._calls[backend] = self._calls.get(backend, 0) + 1

    def _assemble(self, req: _Request) -> Frames:
        import torch

        entries = req.entries
        if req.error is not None:
            logger.warning("%s", req.error)
            for entry in entries:
                entry.error = entry.error or req.error
        failed = [e for e in entries if e.data is None]
        if failed and self.config.on_error == "raise":  # defensive: errors were raised earlier
            raise failed[0].error or FrameDecodeError("frame was not decoded", file=req.file, episode=req.episode,
                                                      camera=req.camera, time=failed[0].t)
        for e in failed:
            if e.error is not None and req.error is None:
                logger.warning("%s", e.error)
        ok = not failed
        data: Any
        if ok:
            batch = entries[0].batch if entries else None
            if batch is not None and len(batch) == len(entries) and all(
                e.batch is batch and e.pos == i for i, e in enumerate(entries)
            ):
                data = batch.permute(0, 3, 1, 2)  # exactly one decoded batch, in order: no copy
            elif entries:
                data = self._gather([e.data for e in entries]).permute(0, 3, 1, 2)
            else:
                data = torch.empty((0, 3, 0, 0), dtype=torch.uint8)
        else:
            data = [e.data.permute(2, 0, 1) if e.data is not None else None for e in entries]
        return Frames(
            data=data,
            requested=tuple(e.t for e in entries),
            timestamps=tuple((e.pts - req.from_timestamp) if e.data is not None else math.nan for e in entries),
            pts=tuple(e.pts if e.data is not None else math.nan for e in entries),
            indices=tuple(e.episode_frame if e.data is not None else -1 for e in entries),
            camera=req.camera,
            episode_index=req.episode,
            file=req.file,
            backend=req.backend,
            errors=tuple(None if e.data is not None else str(e.error) for e in entries) if not ok else (),
        )


# ------------------------------------------------------------------------------------------------


def _worker_crash_types() -> tuple[type[BaseException], ...]:
    from .isolate import WorkerCrashed

    return (WorkerCrashed,)


def _retarget(exc: FrameDecodeError, req: _Request, entry: _Entry) -> FrameDecodeError:
    """The same failure, named for one entry of one request (a batch may span several episodes)."""
    return type(exc)(exc.reason, file=req.file, episode=req.episode, camera=req.camera, time=entry.t,
                     backend=exc.backend)


def _read_episode_timestamps(row: dict[str, Any]) -> np.ndarray:
    import pyarrow.parquet as pq

    if not row.get("data_file"):
        return (np.arange(row["length"], dtype=np.float64) / row["fps"]).astype(np.float32)
    path = os.path.join(row["root"], row["data_file"])
    table = pq.read_table(path, columns=["episode_index", "frame_index", "timestamp"],
                          filters=[("episode_index", "=", row["episode_index"])])
    table = table.sort_by("frame_index")
    ts = table["timestamp"].to_numpy().astype(np.float32)
    if len(ts) != row["length"]:
        raise FrameDecodeError(f"data parquet holds {len(ts)} frames of the episode, metadata says {row['length']}",
                               file=path, episode=row["episode_index"])
    return ts


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _short_list(values: list[int]) -> str:
    return str(values) if len(values) <= 8 else f"[{values[0]}, ..., {values[-1]}]"


def _check_backend(backend: str) -> None:
    if backend == "auto":
        if not any(backend_available(b) for b in BACKENDS):
            raise BackendUnavailableError("no decoding backend is usable: install torchcodec, PyAV or ffmpeg")
        return
    if not backend_available(backend):
        hints = {
            "torchcodec": "torchcodec.decoders does not load (it needs FFmpeg shared libraries, e.g. "
            "`apt-get install ffmpeg`, and a torch build it was compiled for)",
            "pyav": "PyAV is not installed (`pip install av`)",
            "ffmpeg": "the ffmpeg executable is not on PATH",
        }
        raise BackendUnavailableError(f"backend {backend!r} is unavailable: {hints[backend]}; or use backend='auto'")


def make_frame_provider(
    root_or_episodes: Any,
    camera_key: str | None = None,
    backend: str = "auto",
    *,
    tolerance_s: float | None = None,
    tolerance_frames: float = DEFAULT_TOLERANCE_FRAMES,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    max_open_decoders: int = DEFAULT_MAX_OPEN_DECODERS,
    isolate: bool = False,
    isolate_workers: int = 2,
    workers: int = 1,
    on_error: str = "raise",
    decoder_threads: int = 1,
    timeout_s: float = 600.0,
    episodes: Sequence[int] | None = None,
) -> VideoFrameProvider | NullProvider:
    """A FrameProvider for a dataset root / Hub repo id, a `load_episodes` table, or episode row dicts.

    `camera_key` is the default camera (else the first one). `backend`: "auto" (torchcodec, falling back
    to PyAV, then the ffmpeg CLI, per file), "torchcodec", "pyav" or "ffmpeg". `tolerance_s` (else
    `tolerance_frames` x frame period) bounds how far a requested time may be from its frame.
    `isolate=True` decodes in `isolate_workers` worker processes (a decoder crash becomes a
    `DecoderCrashError`). `workers=k` decodes the frames of one call on k threads (each with its own
    decoders; a single long request, e.g. 1 Hz over a long episode, then uses k cores). `cache_bytes` > 0
    keeps that many bytes of decoded frames for callers that ask for the same frames again (off by default).
    `on_error="none"` turns failures into `None` entries (logged) instead of exceptions. Returns a
    `NullProvider` when the dataset has no cameras.
    """
    config = ProviderConfig(
        backend=backend, camera_key=camera_key, tolerance_s=tolerance_s, tolerance_frames=tolerance_frames,
        cache_bytes=cache_bytes, max_open_decoders=max_open_decoders, isolate=isolate,
        isolate_workers=isolate_workers, workers=workers, on_error=on_error, decoder_threads=decoder_threads, timeout_s=timeout_s,
    )
    rows, source = _rows_from(root_or_episodes, episodes)
    if not any(r.get("cameras") for r in rows):
        if camera_key is not None:
            raise UnknownCameraError(f"unknown camera {camera_key!r}; the dataset has no cameras", file=source,
                                     camera=camera_key)
        return NullProvider(source)
    return VideoFrameProvider(rows, config, source=source)
