"""Frame providers: episode-relative times in, the exact video frames out.

`make_frame_provider` builds a `VideoFrameProvider` for a dataset root / Hub repo id, an episode table or
episode records (a `NullProvider` when the dataset has no cameras). A call resolves its times against each
file's real pts table (`_planning`), decodes what the cache does not hold in one batch per file
(`_decoding`) and assembles one `Frames` per request, in order.

Concurrency: no lock on the decode path. Every thread (and process) has its own small LRU of open
decoders, created lazily where it is used (after fork, after unpickling); with `cache_mb` > 0 frames also
land in a shared, byte-bounded, thread-safe LRU cache (off by default). The provider pickles to its
configuration plus the episode records, so it can be shipped to `datasets.map(num_proc=k)` workers and
hashed for a stable fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ..dataset.episodes import EpisodeSource
from ..dataset.records import CameraRef, Episode
from ..dataset.remote import DEFAULT_VIDEO_ACCESS, HubFile, VideoAccess
from ..utils.fork import torch_fork_guard
from ..utils.state import PicklesAsConfig
from ..utils.timeline import evenly_spaced
from . import _planning as planning
from ._decoding import Decoding, ProviderStats
from .cache import FrameCache
from .config import (
    DEFAULT_CACHE_MB,
    DEFAULT_MAX_OPEN_DECODERS,
    DEFAULT_TOLERANCE_FRAMES,
    OnError,
    ProviderConfig,
    VideoBackend,
    check_video_backend,
)
from .errors import FrameDecodeError, FrameTimeError, UnknownCameraError
from .types import Frames

if TYPE_CHECKING:
    from .decoders.index import FileIndex

__all__ = ["EpisodeRef", "FrameProvider", "NullProvider", "ProviderStats", "VideoFrameProvider",
           "make_frame_provider"]

# An episode, as callers hold it: its typed record, an episode-table row (a dict from `datasets`), or its
# index in the provider's table.
EpisodeRef = Episode | Mapping[str, Any] | int
_NO_TIMESTAMPS = np.zeros(0, np.float32)


@runtime_checkable
class FrameProvider(Protocol):
    """What keyframe policies, content blocks and the datasets transform code against."""

    camera_keys: list[str]
    default_camera: str | None

    def frames_at(self, episode: EpisodeRef, timestamps: Sequence[float], camera: str | None = None) -> Frames: ...

    def video_for_episode(self, episode: EpisodeRef, max_frames: int, camera: str | None = None) -> Frames: ...


def _episode_index(episode: EpisodeRef) -> int:
    if isinstance(episode, Episode):
        return episode.episode_index
    if isinstance(episode, Mapping):
        return int(episode.get("episode_index", -1))
    return int(episode)


class NullProvider:
    """Provider of a dataset without cameras: every frame request is an error (never silently no images)."""

    camera_keys: list[str]
    default_camera: str | None

    def __init__(self, source: str | None = None) -> None:
        self.camera_keys = []
        self.default_camera = None
        self.source = source

    def frames_at(self, episode: EpisodeRef, timestamps: Sequence[float], camera: str | None = None) -> Frames:
        raise UnknownCameraError(
            "the dataset has no (non-depth) cameras; nothing to decode",
            file=self.source, episode=_episode_index(episode), camera=camera, times=[float(t) for t in timestamps],
        )

    def video_for_episode(self, episode: EpisodeRef, max_frames: int, camera: str | None = None) -> Frames:
        return self.frames_at(episode, [], camera)

    def fingerprint(self) -> str:
        return hashlib.sha256(b"NullProvider").hexdigest()[:16]

    def close(self) -> None:
        pass


class VideoFrameProvider(PicklesAsConfig):
    """The FrameProvider of a LeRobot v3 dataset (video cameras and image-stored cameras).

    Build it with `make_frame_provider`. `episode` arguments are an `Episode`, an episode-table row
    (self-contained: its own root and cameras are used, so `datasets.map` workers that only see rows can
    decode) or an episode index (looked up in the provider's table).
    """

    CONFIG_FIELDS = ("config", "source", "episodes", "camera_keys", "default_camera")

    def __init__(self, episodes: Iterable[Episode | Mapping[str, Any]], config: ProviderConfig | None = None, *,
                 source: str | None = None) -> None:
        self.config = config or ProviderConfig()
        self.source = source
        # the table keeps records without their timestamps (read again, once, when asked for): a provider is
        # pickled into every map worker and hashed, and a large dataset's timestamps would dominate both
        self.episodes: dict[int, Episode] = {}
        for ep in map(Episode.from_row, episodes):
            self.episodes[ep.episode_index] = dataclasses.replace(ep, timestamps=_NO_TIMESTAMPS, signals={})
        keys = list(dict.fromkeys(k for ep in self.episodes.values() for k in ep.camera_keys))
        self.camera_keys = keys
        if self.config.camera_key is not None and self.config.camera_key not in keys and keys:
            raise UnknownCameraError(f"unknown camera {self.config.camera_key!r}; the dataset has {keys}",
                                     file=source, camera=self.config.camera_key)
        self.default_camera = self.config.camera_key or (keys[0] if keys else None)
        check_video_backend(self.config.video_backend)

    def make_runtime(self) -> Decoding:
        return Decoding(self.config)

    def fingerprint(self) -> str:
        """A stable hash of the configuration and the episodes served (same inputs: same string)."""
        config = asdict(self.config)
        config.pop("video_access")  # streamed or downloaded, the frames are the same
        payload = {"config": config, "source": self.source,
                   "episodes": [self.episodes[k].to_row(timestamps=False) for k in sorted(self.episodes)]}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return (f"VideoFrameProvider(episodes={len(self.episodes)}, cameras={self.camera_keys}, "
                f"video_backend={self.config.video_backend!r}, isolate={self.config.isolate})")

    # -- public API --------------------------------------------------------------------------------
    @property
    def episode_indices(self) -> list[int]:
        return sorted(self.episodes)

    def frames_at(self, episode: EpisodeRef, timestamps: Sequence[float], camera: str | None = None) -> Frames:
        """Frames of `camera` (default: the provider's default camera) at episode-relative times."""
        return self.frames_at_many([(episode, timestamps, camera)])[0]

    def frames_at_many(self, requests: Iterable[tuple[EpisodeRef, Sequence[float], str | None]]) -> list[Frames]:
        """Several (episode, timestamps, camera) requests at once: frames of the same file are merged,
        sorted and decoded in one batch call. One `Frames` per request, in order."""
        runtime: Decoding = self.runtime()
        torch_fork_guard()
        requests = list(requests)
        runtime.read_headers([self._remote_of(episode, camera) for episode, _, camera in requests])
        plans = [self._plan(runtime, episode, timestamps, camera) for episode, timestamps, camera in requests]
        runtime.fill_from_cache(plans)
        runtime.decode_missing(plans)
        return [planning.assemble(p, self.config.on_error, runtime.stack) for p in plans]

    def iter_frames_at(self, episode: EpisodeRef, timestamps: Sequence[float], camera: str | None = None, *,
                       batch_size: int = 32) -> Iterator[Frames]:
        """`frames_at` in consecutive chunks of `batch_size` times, so memory stays bounded by the chunk
        (plus the cache) however long the episode: e.g. every frame at 1 Hz over an hour of video."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        times = list(timestamps)
        for start in range(0, len(times), batch_size):
            yield self.frames_at(episode, times[start : start + batch_size], camera)

    def video_for_episode(self, episode: EpisodeRef, max_frames: int, camera: str | None = None) -> Frames:
        """`max_frames` frames spread uniformly over the episode by frame index, first and last included
        (the first frame alone for `max_frames=1`)."""
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        ep = self._episode(episode)
        ts = self.episode_timestamps(ep)
        if len(ts) == 0:
            raise FrameTimeError("the episode has no frames", file=self._episode_file(ep, camera),
                                 episode=ep.episode_index, camera=camera or self.default_camera)
        k = min(int(max_frames), len(ts))
        positions = [0] if k == 1 else evenly_spaced(len(ts), k).tolist()
        return self.frames_at(ep, [float(ts[i]) for i in positions], camera)

    def frame_table(self, episode: EpisodeRef, camera: str | None = None) -> FileIndex:
        """The pts table of the file that holds `camera`'s frames of `episode` (a Hub video's from its header, read
        by range). Raises FileNotFoundError for a missing file that is not on the Hub."""
        ep = self._episode(episode)
        cam = self._camera(ep, camera, [])
        path = os.path.join(ep.root or "", cam.path)
        req = planning.Request(ep.episode_index, cam.key, cam.storage, path, cam.from_timestamp)
        req.remote = self.runtime().remote_file(ep, cam, path)
        if req.remote is None and not os.path.exists(path):
            raise FileNotFoundError(path)
        return self.runtime().file_index(req)

    def episode_timestamps(self, episode: EpisodeRef) -> np.ndarray:
        """The episode's exact float32 frame timestamps (from its record, else from its data parquet)."""
        ep = self._episode(episode)
        if len(ep.timestamps) or not ep.length:
            return ep.timestamps
        completed = self.runtime().completed
        key = (ep.root, ep.episode_index)
        if key not in completed:
            completed[key] = ep.with_timestamps()
        return completed[key].timestamps

    @property
    def cache(self) -> FrameCache:
        return self.runtime().cache

    def stats(self) -> ProviderStats:
        return self.runtime().stats()

    def close(self) -> None:
        """Close this thread's decoders and any worker processes (other threads' decoders close with them)."""
        held = self.__dict__.get("_runtime_of_pid")
        if held is not None and held[0] == os.getpid():
            held[1].close()

    def __enter__(self) -> VideoFrameProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolution ----------------------------------------------------------------------------------
    def _episode(self, episode: EpisodeRef) -> Episode:
        if isinstance(episode, (Episode, Mapping)):
            try:
                return Episode.from_row(episode)
            except KeyError as exc:
                raise ValueError(f"episode row lacks field {exc}; expected a row of lerobot_keyframes.load_episodes"
                                 ) from exc
        if isinstance(episode, (int, np.integer)):
            found = self.episodes.get(int(episode))
            if found is None:
                raise FrameDecodeError(
                    f"episode {int(episode)} is not served by this provider (it has {len(self.episodes)} episodes: "
                    f"{_short_list(sorted(self.episodes))}); pass the episode row instead",
                    file=self.source, episode=int(episode),
                )
            return found
        raise TypeError(f"episode must be an Episode, an episode row dict or an episode index, "
                        f"got {type(episode).__name__}")

    def _camera(self, ep: Episode, camera: str | None, times: Sequence[float]) -> CameraRef:
        key = camera or self.default_camera
        for cam in ep.cameras:
            if cam.key == key:
                return cam
        raise UnknownCameraError(f"unknown camera {key!r}; episode {ep.episode_index} has {list(ep.camera_keys)}",
                                 file=ep.root, episode=ep.episode_index, camera=key, times=times)

    def _episode_file(self, ep: Episode, camera: str | None) -> str | None:
        key = camera or self.default_camera
        for cam in ep.cameras:
            if cam.key == key:
                return os.path.join(ep.root or "", cam.path)
        return ep.root

    def _remote_of(self, episode: EpisodeRef, camera: str | None) -> HubFile | None:
        """The Hub file a request would read by range (None for anything else, or a request in error)."""
        try:
            ep = self._episode(episode)
            cam = next((c for c in ep.cameras if c.key == (camera or self.default_camera)), None)
        except (FrameDecodeError, ValueError, TypeError):
            return None
        if cam is None:
            return None
        from ._remote import remote_file

        return remote_file(ep, cam, os.path.join(ep.root or "", cam.path))

    def _plan(self, runtime: Decoding, episode: EpisodeRef, timestamps: Sequence[float],
              camera: str | None) -> planning.Request:
        on_error = self.config.on_error
        times = [float(t) for t in np.asarray(timestamps, dtype=np.float64).reshape(-1)] if len(timestamps) else []
        try:
            ep = self._episode(episode)
            cam = self._camera(ep, camera, times)
        except FrameDecodeError as exc:
            if on_error == "raise":
                raise
            return planning.Request(_episode_index(episode), camera or self.default_camera or "", "video",
                                    exc.file or "", 0.0, [planning.Entry(t) for t in times], error=exc)
        req = planning.Request(ep.episode_index, cam.key, cam.storage, os.path.join(ep.root or "", cam.path),
                               cam.from_timestamp, [planning.Entry(t) for t in times])
        if not times:
            return req
        req.remote = runtime.remote_file(ep, cam, req.file)  # a Hub video not on disk: read by range
        tol = planning.tolerance(self.config, cam, ep)
        try:
            if cam.storage == "image":
                planning.resolve_image(req, ep, runtime.image_source(req), tol, on_error)
            else:
                planning.resolve_video(req, ep, runtime.file_index(req), tol, on_error)
        except FrameDecodeError as exc:
            if on_error == "raise":
                raise
            req.error = exc
        return req


def _short_list(values: list[int]) -> str:
    return str(values) if len(values) <= 8 else f"[{values[0]}, ..., {values[-1]}]"


def make_frame_provider(
    source: EpisodeSource,
    camera_key: str | None = None,
    video_backend: VideoBackend = "auto",
    *,
    tolerance_s: float | None = None,
    tolerance_frames: float = DEFAULT_TOLERANCE_FRAMES,
    cache_mb: float = DEFAULT_CACHE_MB,
    max_open_decoders: int = DEFAULT_MAX_OPEN_DECODERS,
    isolate: bool = False,
    isolate_workers: int = 2,
    workers: int = 1,
    on_error: OnError = "raise",
    decoder_threads: int = 1,
    timeout_s: float = 600.0,
    episodes: Sequence[int] | None = None,
    video_access: VideoAccess = DEFAULT_VIDEO_ACCESS,
) -> VideoFrameProvider | NullProvider:
    """A FrameProvider for a dataset root / Hub repo id, a `load_episodes` table, or episode records / rows.

    Args:
        source: where the episodes come from (a dataset root, a Hub repo id, an episode table or records).
        camera_key: the default camera (else the first one).
        video_backend: "auto" (torchcodec, falling back to PyAV, then the ffmpeg CLI, per file),
            "torchcodec", "pyav" or "ffmpeg".
        tolerance_s: bounds how far a requested time may be from its frame (else `tolerance_frames` x the
            frame period).
        cache_mb: MiB of decoded frames kept for callers that ask for the same frames again (off by default).
        isolate: decode in `isolate_workers` worker processes (a decoder crash becomes a `DecoderCrashError`).
        workers: decode the frames of one call on this many threads (each with its own decoders; a single
            long request, e.g. 1 Hz over a long episode, then uses several cores).
        on_error: "none" turns failures into `None` entries (logged) instead of exceptions.
        episodes: serve only these episode indices.
        video_access: how a Hub dataset's videos are read: "auto" (default: by byte range, a file downloaded
            whole when a decode needs most of it), "stream" (byte ranges only where the header allows) or
            "download" (whole files into the Hugging Face cache, before the first decode).

    Returns a `NullProvider` when the dataset has no cameras.
    """
    from ..dataset.episodes import episode_records

    config = ProviderConfig(
        video_backend=video_backend, camera_key=camera_key, tolerance_s=tolerance_s,
        tolerance_frames=tolerance_frames, cache_mb=cache_mb, max_open_decoders=max_open_decoders, isolate=isolate,
        isolate_workers=isolate_workers, workers=workers, on_error=on_error, decoder_threads=decoder_threads,
        timeout_s=timeout_s, video_access=video_access,
    )
    records, origin = episode_records(source, episodes=episodes, video_access=video_access)
    if not any(ep.cameras for ep in records):
        if camera_key is not None:
            raise UnknownCameraError(f"unknown camera {camera_key!r}; the dataset has no cameras", file=origin,
                                     camera=camera_key)
        return NullProvider(origin)
    return VideoFrameProvider(records, config, source=origin)
