"""ffmpeg CLI backend: decoding in a child process (a crash is an exit code, not a dead job).

Many frames per process: the requested frames are grouped into segments that share a keyframe
(or lie close together); each segment is one input `-noaccurate_seek -ss <keyframe> -t <span> -i FILE`,
frames are picked with `select='eq(pts,P1)+eq(pts,P2)...'` on the exact integer pts from our index
(`-copyts` keeps them), and the segments are concatenated into one raw rgb24 stream on stdout.
Choosing frames by exact pts avoids `-ss T -frames:v 1`, which returns the first frame with
pts >= T (the next frame for float32 dataset times just above a frame) and fails on a file's last frame.
"""

from __future__ import annotations

import functools
import logging
import re
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .base import BackendDecodeError, ffmpeg_executable

if TYPE_CHECKING:
    import torch

    from .index import FileIndex

logger = logging.getLogger(__name__)

MAX_INPUTS_PER_PROCESS = 24
MERGE_GAP_FRAMES = 12  # decode through gaps up to this many frames instead of opening another input
MAX_SELECT_TERMS = 32  # FFmpeg's expression parser gives up (ENOMEM) on very long sums


def _runs(members: list[int]) -> list[tuple[int, int]]:
    """Sorted unique indices as (first, last) runs of consecutive frames."""
    runs: list[tuple[int, int]] = []
    for i in members:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


class _ShortOutput(BackendDecodeError):
    """ffmpeg ran fine but returned fewer frames than selected."""


@functools.lru_cache(maxsize=8)
def _ffmpeg_version(exe: str) -> tuple[int, int]:
    try:
        out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return (0, 0)
    match = re.search(r"ffmpeg version n?(\d+)\.(\d+)", out.stdout.decode("utf-8", "replace"))
    return (int(match.group(1)), int(match.group(2))) if match else (99, 0)  # git builds: assume new


class FFmpegCLIDecoder:
    name = "ffmpeg"

    def __init__(self, path: str, index: FileIndex, *, threads: int = 1, timeout_s: float = 600.0) -> None:
        exe = ffmpeg_executable()
        if exe is None:
            raise BackendDecodeError("the ffmpeg executable is not on PATH")
        if index.width <= 0 or index.height <= 0:
            raise BackendDecodeError("unknown frame size; cannot read raw frames from ffmpeg")
        self.path = path
        self.index = index
        self.exe = exe
        self.threads = threads
        self.timeout_s = timeout_s

    def _segments(self, indices: list[int]) -> list[tuple[int, list[int]]]:
        """Group sorted indices into inputs: one per keyframe span (or close-together frames), each
        with at most MAX_SELECT_TERMS runs of consecutive frames in its select expression."""
        segments: list[tuple[int, list[int]]] = []
        runs = 0
        for i in indices:
            last = segments[-1][1] if segments else None
            if last is not None and i == last[-1] + 1:
                last.append(i)  # extends the current run
                continue
            key = self.index.keyframe_at_or_before(i)
            if last is not None and (key <= last[-1] or i - last[-1] <= MERGE_GAP_FRAMES) and runs < MAX_SELECT_TERMS:
                last.append(i)
                runs += 1
            else:
                segments.append((key, [i]))
                runs = 1
        return segments

    def decode(self, indices: Sequence[int]) -> torch.Tensor:
        import torch

        indices = [int(i) for i in indices]
        h, w = self.index.height, self.index.width
        if not indices:
            return torch.empty((0, 3, h, w), dtype=torch.uint8)
        segments = self._segments(indices)
        chunks: list[np.ndarray] = []
        for start in range(0, len(segments), MAX_INPUTS_PER_PROCESS):
            group = segments[start : start + MAX_INPUTS_PER_PROCESS]
            chunks.append(self._run(group))
        frames = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        if frames.shape[0] != len(indices):
            raise BackendDecodeError(f"ffmpeg produced {frames.shape[0]} frames for {len(indices)} requested")
        return torch.from_numpy(frames.copy() if not frames.flags.writeable else frames).permute(0, 3, 1, 2)

    def _command(self, segments: list[tuple[int, list[int]]], *, seek: bool = True) -> list[str]:
        num, den = self.index.time_base
        period = self.index.frame_period if np.isfinite(self.index.frame_period) else 0.04
        args = [self.exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-copyts"]
        filters = []
        for k, (key, members) in enumerate(segments):
            args += ["-threads", str(self.threads)]
            if seek and key > 0:
                # ffmpeg's -ss seeks to the last keyframe with pts <= the target: aim a quarter frame past
                # the keyframe's pts (never at a float that could round below it). With -noaccurate_seek,
                # -t counts from the keyframe it lands on; read a few frames past the last wanted one so
                # B-frame references are there.
                key_pts = float(self.index.pts[key]) * num / den
                end = float(self.index.pts[members[-1]]) * num / den
                span = (end - key_pts) + 4 * period
                args += ["-noaccurate_seek", "-ss", f"{key_pts + 0.25 * period:.6f}", "-t", f"{span:.6f}"]
            args += ["-i", self.path]
            terms = []
            for lo, hi in _runs(members):  # consecutive frames: every pts between the two ends
                a, b = int(self.index.pts[lo]), int(self.index.pts[hi])
                terms.append(f"eq(pts\\,{a})" if lo == hi else f"between(pts\\,{a}\\,{b})")
            expr = "+".join(terms)
            filters.append(f"[{k}:v:0]select='{expr}'[s{k}]")
        graph = ";".join(filters) + ";" + "".join(f"[s{k}]" for k in range(len(segments)))
        graph += f"concat=n={len(segments)}:v=1:a=0[out]"
        # -fps_mode exists from FFmpeg 5.1; older releases only know -vsync
        sync = ["-fps_mode", "passthrough"] if _ffmpeg_version(self.exe) >= (5, 1) else ["-vsync", "passthrough"]
        args += ["-filter_complex", graph, "-map", "[out]", *sync, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        return args

    def _run(self, segments: list[tuple[int, list[int]]]) -> np.ndarray:
        try:
            return self._run_once(self._command(segments), sum(len(m) for _, m in segments))
        except _ShortOutput as exc:
            # The container did not seek where its index said (or -t cut a B-frame reference): decode this
            # group from the start of the file in one input instead. Slow, but still exact.
            logger.info("%s: ffmpeg seek missed frames (%s); decoding from the start of the file", self.path, exc)
            members = [i for _, m in segments for i in m]
            try:
                return self._run_once(self._command([(0, members)], seek=False), len(members))
            except _ShortOutput as exc2:
                raise BackendDecodeError(str(exc2)) from exc2

    def _run_once(self, args: list[str], n: int) -> np.ndarray:
        h, w = self.index.height, self.index.width
        try:
            proc = subprocess.run(args, capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BackendDecodeError(f"ffmpeg timed out after {self.timeout_s:.0f}s") from exc
        except OSError as exc:
            raise BackendDecodeError(f"cannot run ffmpeg ({exc})") from exc
        err = proc.stderr.decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            raise BackendDecodeError(f"ffmpeg exited with code {proc.returncode}: {err[-500:]}")
        size = h * w * 3
        if len(proc.stdout) != n * size:
            raise _ShortOutput(
                f"ffmpeg produced {len(proc.stdout) / size:.2f} frames for {n} requested" + (f": {err[-300:]}" if err else "")
            )
        return np.frombuffer(proc.stdout, dtype=np.uint8).reshape(n, h, w, 3)

    def close(self) -> None:
        pass
