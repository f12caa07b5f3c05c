"""PyAV backend: seek to the keyframe before each requested frame, decode forward, keep only what was asked.

Memory holds the requested frames only, whatever the span between them. A new seek happens only
when a keyframe lies between the previous requested frame and the next one (otherwise decoding on
is cheaper than seeking back to the same keyframe).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import BackendDecodeError
from .index import open_container

if TYPE_CHECKING:
    import torch

    from . import Source
    from .index import FileIndex

logger = logging.getLogger(__name__)

_MAX_SEEK_RETRIES = 3


class PyAVDecoder:
    name = "pyav"

    def __init__(self, path: str, index: FileIndex, *, threads: int = 1, source: Source | None = None) -> None:
        self.path = path
        self.index = index
        try:
            self._container = open_container(path, source(False) if source is not None else None)
            self._stream = self._container.streams.video[0]
        except Exception as exc:
            raise BackendDecodeError(f"PyAV cannot open the video ({type(exc).__name__}: {exc})") from exc
        ctx = self._stream.codec_context
        if threads and threads > 0:
            try:
                ctx.thread_count = threads
            except Exception:  # some PyAV versions refuse once opened; the default is fine
                pass

    def decode(self, indices: Sequence[int]) -> torch.Tensor:
        import torch

        indices = [int(i) for i in indices]
        if not indices:
            return torch.empty((0, 3, self.index.height, self.index.width), dtype=torch.uint8)
        out: dict[int, np.ndarray] = {}
        runs = self._plan(indices)
        for start_key, members in runs:
            self._decode_run(start_key, members, out)
        arrays = [out[i] for i in indices]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)

    def _plan(self, indices: list[int]) -> list[tuple[int, list[int]]]:
        """Group sorted indices into runs that share one seek: a run breaks where a keyframe lies
        strictly after the previous requested frame and at or before the next one."""
        runs: list[tuple[int, list[int]]] = []
        for i in indices:
            key = self.index.keyframe_at_or_before(i)
            if runs and key <= runs[-1][1][-1]:
                runs[-1][1].append(i)
            else:
                runs.append((key, [i]))
        return runs

    def _decode_run(self, key: int, members: list[int], out: dict[int, np.ndarray]) -> None:
        wanted = {int(self.index.pts[i]): i for i in members}
        last_pts = int(self.index.pts[members[-1]])
        got: dict[int, np.ndarray] = {}
        for _attempt in range(_MAX_SEEK_RETRIES + 1):
            got = {}
            self._seek_and_decode(self.index.seek_target(key), wanted, last_pts, got)
            if len(got) == len(wanted):
                for pts, arr in got.items():
                    out[wanted[pts]] = arr
                return
            if key == 0:
                break
            logger.debug("%s: seek to keyframe %d missed frames; seeking earlier", self.path, key)
            key = self.index.keyframe_at_or_before(key - 1)  # the seek landed after a target: go earlier
        missing = sorted(set(wanted.values()) - {wanted[p] for p in got})
        raise BackendDecodeError(
            f"PyAV did not produce frame(s) {missing[:5]} (pts {[int(self.index.pts[i]) for i in missing[:5]]})"
        )

    def _seek_and_decode(self, seek_ts: int, wanted: dict[int, int], last_pts: int, got: dict[int, np.ndarray]) -> None:
        container: Any = self._container
        stream = self._stream
        try:
            container.seek(seek_ts, stream=stream, backward=True, any_frame=False)
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if frame.pts is None:
                        continue
                    pts = int(frame.pts)
                    if pts in wanted and pts not in got:
                        got[pts] = frame.to_ndarray(format="rgb24")
                    if pts >= last_pts:
                        return
        except BackendDecodeError:
            raise
        except Exception as exc:
            raise BackendDecodeError(f"PyAV failed to decode ({type(exc).__name__}: {exc})") from exc

    def close(self) -> None:
        try:
            self._container.close()
        except Exception:
            pass
