"""Errors of the frame stack. Each names the file, episode, camera and time(s) it failed on, both in the
message (so a user can act on it) and as attributes (so callers can route or retry)."""

from __future__ import annotations

from collections.abc import Sequence


def _format_times(times: Sequence[float]) -> str:
    if not times:
        return "t=?"
    if len(times) == 1:
        return f"t={times[0]:.6f}s"
    shown = ", ".join(f"{t:.6f}" for t in times[:4])
    more = f", ... ({len(times)} times)" if len(times) > 4 else ""
    return f"t=[{shown}{more}]s"


class FrameDecodeError(RuntimeError):
    """A frame could not be delivered: missing or unreadable video, decoder failure or crash, bad time.

    Attributes: `file` (absolute path), `episode` (index), `camera` (key), `time` (the first failing
    episode-relative time), `times` (all times of the failed request), `video_backend`, `reason`.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        episode: int | None = None,
        camera: str | None = None,
        time: float | None = None,
        times: Sequence[float] | None = None,
        video_backend: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.episode = episode
        self.camera = camera
        self.times = tuple(float(t) for t in times) if times is not None else (
            (float(time),) if time is not None else ()
        )
        self.time = float(time) if time is not None else (self.times[0] if self.times else None)
        self.video_backend = video_backend
        where = [f"episode {episode}" if episode is not None else "episode ?", f"camera {camera}"]
        where.append(_format_times(self.times))
        if video_backend:
            where.append(f"video_backend {video_backend}")
        super().__init__(f"{file}: {', '.join(where)}: {reason}")

    def __reduce__(self):  # keep attributes through pickling (worker processes, datasets.map)
        return (
            _rebuild,
            (type(self), self.reason, self.file, self.episode, self.camera, self.time, self.times, self.video_backend),
        )


def _rebuild(cls, reason, file, episode, camera, time, times, video_backend):  # noqa: ANN001, ANN202
    return cls(reason, file=file, episode=episode, camera=camera, time=time, times=times, video_backend=video_backend)


class VideoFileMissingError(FrameDecodeError):
    """The video (or image parquet) file named by the episode row does not exist."""


class FrameTimeError(FrameDecodeError):
    """A requested time lies outside the episode, or no frame lies within the tolerance of it."""


class DecoderCrashError(FrameDecodeError):
    """An isolated decoder process died (e.g. a segfault on a broken stream) or timed out."""


class UnknownCameraError(FrameDecodeError):
    """The camera key is not one of the episode's cameras."""


class VideoBackendUnavailableError(RuntimeError):
    """The requested video backend cannot be used here (library missing or failing to load)."""


class RemoteReadError(FrameDecodeError):
    """Bytes of a Hub video could not be read by range (after retries): the reason names the byte range and the
    last HTTP status (`status`, None for a network error or an offline cache miss)."""

    def __init__(self, reason: str, *, status: int | None = None, **where: object) -> None:
        self.status = status
        super().__init__(reason, **where)  # type: ignore[arg-type]

    def __reduce__(self):
        return (_rebuild_remote, (self.reason, self.status, self.file, self.episode, self.camera, self.time,
                                  self.times, self.video_backend))


def _rebuild_remote(reason, status, file, episode, camera, time, times, video_backend):  # noqa: ANN001, ANN202
    return RemoteReadError(reason, status=status, file=file, episode=episode, camera=camera, time=time, times=times,
                           video_backend=video_backend)
