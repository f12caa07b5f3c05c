"""Per-episode quality findings, computed before any model call.

Checks, cheapest first:

- `missing_frames`: episode times with no video frame within 0.4 frame of `from_timestamp + t` in the
  camera's file (a truncated file, a stream that ends early, decode gaps), read from the file's pts table
  without decoding; a missing file is the same finding;
- `black_camera` / `frozen_camera`: `frames_per_camera` frames spread over the episode, decoded with the
  run's frame provider, are all near black, or mostly (median step) show the same picture;
- `unreadable_camera`: those frames cannot be decoded (the provider's error, naming file and time);
- `short_episode`: far shorter than the median of its neighbours (an aborted recording);
- `gripper_constant`: the gripper entry of the signal never changes (a disconnected sensor, or the
  wrong entry configured), so gripper events and grounded boundaries cannot come from it.

Findings are small frozen records that serialize to JSON (`as_dict`) for the summary and provenance.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..frames.policies.events import resolve_signal
from ..utils.timeline import evenly_spaced
from .config import QualityConfig

if TYPE_CHECKING:
    from ..frames.provider import FrameProvider

logger = logging.getLogger(__name__)

FindingKind = Literal["missing_frames", "black_camera", "frozen_camera", "unreadable_camera", "short_episode",
                      "gripper_constant"]
TOLERANCE_FRAMES = 0.4


@dataclass(frozen=True)
class QualityFinding:
    """One problem of one episode (and camera), with the first time it shows and a measured value."""

    kind: FindingKind
    episode_index: int
    message: str
    camera: str | None = None
    time: float | None = None  # episode time (s) where it first shows, when it has one
    value: float | None = None  # what was measured (missing frame count, mean pixel value, length ratio, ...)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f"episode {self.episode_index}" + (f", camera {self.camera}" if self.camera else "")
        when = f" at {self.time:.3f} s" if self.time is not None else ""
        return f"{where}{when}: {self.kind}: {self.message}"


def _missing_frames(row: Mapping[str, Any], cam: Mapping[str, Any], provider: Any = None
                    ) -> tuple[list[QualityFinding], set[int]]:
    """Findings and the positions of the episode's frames that the camera's file does not hold (the frame table
    comes from the provider when it has one: a Hub video is then read by range, not downloaded)."""
    from ..frames.decoders.index import file_index

    e, key = int(row["episode_index"]), str(cam["key"])
    path = os.path.join(str(row["root"]), str(cam["path"]))
    ts = np.asarray(row["timestamps"], dtype=np.float64)
    try:
        index = provider.frame_table(row, key) if hasattr(provider, "frame_table") else file_index(path)
    except FileNotFoundError:
        return [QualityFinding("missing_frames", e, f"video file {path} is missing", key, 0.0, float(len(ts)))], set(
            range(len(ts)))
    except Exception as exc:  # noqa: BLE001 - any demux failure is a finding, not a crash of the run
        return [QualityFinding("unreadable_camera", e, f"{path}: cannot read the video's frame table ({exc})", key,
                               0.0)], set(range(len(ts)))
    fps = float(cam.get("fps") or row["fps"])
    tol = TOLERANCE_FRAMES / fps
    targets = ts + float(cam["from_timestamp"])
    if len(index.seconds) == 0:
        bad = np.ones(len(ts), dtype=bool)
    else:
        found = index.seconds[index.nearest(targets)]
        bad = np.abs(found - targets) > tol
    if not bad.any():
        return [], set()
    where = np.nonzero(bad)[0]
    last = float(index.seconds[-1]) if len(index.seconds) else float("nan")
    beyond = int((targets > last + tol).sum()) if len(index.seconds) else len(ts)
    detail = f"{beyond} after the stream ends at {last:.3f} s" if beyond else "gaps inside the stream"
    msg = (f"{len(where)} of {len(ts)} frames have no video frame within {tol * 1000:.1f} ms in {path} "
           f"({detail}; first at file time {targets[where[0]]:.3f} s)")
    return [QualityFinding("missing_frames", e, msg, key, float(ts[where[0]]), float(len(where)))], set(where.tolist())


def _picture_times(row: Mapping[str, Any], config: QualityConfig, skip: set[int]) -> list[float]:
    """The episode times whose frames the picture checks decode (none when fewer than 2 are left)."""
    ts = np.asarray(row["timestamps"], dtype=np.float32)
    ok = [i for i in range(len(ts)) if i not in skip]
    k = min(max(2, config.frames_per_camera), len(ok))
    return [float(ts[ok[j]]) for j in evenly_spaced(len(ok), k)] if k >= 2 else []


Pictures = dict[tuple[int, str, tuple[float, ...]], Any]  # (episode, camera, times) -> the decoded Frames


def _decode_pictures(rows: Sequence[Mapping[str, Any]], provider: Any, config: QualityConfig) -> Pictures:
    """The picture checks' frames of every episode and camera, decoded in one provider call: a Hub video read by
    range then costs one round of requests for all episodes, not one per episode and camera. Empty when that call
    fails (each camera is then decoded on its own, so the error names its episode and camera)."""
    if provider is None or not hasattr(provider, "frames_at_many"):
        return {}
    keys = [(int(row["episode_index"]), str(cam["key"]), tuple(_picture_times(row, config, set())), row)
            for row in rows for cam in row.get("cameras") or []]
    keys = [k for k in keys if k[2]]
    try:
        frames = provider.frames_at_many([(row, list(times), key) for _, key, times, row in keys])
    except Exception as exc:  # noqa: BLE001 - decoded again per camera below, where the error is reported
        logger.debug("quality checks: one call for every camera failed (%s); decoding per camera", exc)
        return {}
    return {(e, key, times): f for (e, key, times, _), f in zip(keys, frames)}


def _picture_checks(row: Mapping[str, Any], cam: Mapping[str, Any], provider: Any, config: QualityConfig,
                    skip: set[int], pictures: Pictures | None = None) -> list[QualityFinding]:
    e, key = int(row["episode_index"]), str(cam["key"])
    times = _picture_times(row, config, skip)
    if not times or provider is None:
        return []
    try:
        frames = (pictures or {}).get((e, key, tuple(times)))
        if frames is None or frames.missing:
            frames = provider.frames_at(row, times, key)
        arrays = frames.to_numpy()
    except Exception as exc:  # noqa: BLE001 - the provider's error names file, episode, camera and time
        return [QualityFinding("unreadable_camera", e, str(exc), key, getattr(exc, "time", None))]
    pics = [np.asarray(a, dtype=np.float32)[::4, ::4] for a in arrays if a is not None]
    if len(pics) < 2:
        return []
    out = []
    means = [float(p.mean()) for p in pics]
    if max(means) < config.black_max_mean:
        out.append(QualityFinding("black_camera", e, f"all {len(pics)} sampled frames are black (mean pixel value "
                                  f"at most {max(means):.1f} of 255)", key, times[0], max(means)))
    # frozen: most steps between sampled frames show no change (the median, so that the encoder's
    # refinement of the first frames after a cut, or a last live frame, does not hide a stuck stream)
    diffs = [float(np.abs(a - b).mean()) for a, b in zip(pics, pics[1:])]
    change = float(np.median(diffs))
    if change <= config.frozen_max_diff and not out:
        still = sum(d <= config.frozen_max_diff for d in diffs)
        out.append(QualityFinding("frozen_camera", e, f"{still} of {len(diffs)} steps between {len(pics)} frames sampled "
                                  f"from {times[0]:.2f} s to {times[-1]:.2f} s show no change (median mean change "
                                  f"{change:.2f} of 255)", key, times[0], change))
    return out


def _gripper_check(row: Mapping[str, Any], signal: str, gripper_index: int | None) -> list[QualityFinding]:
    sig, values, _note = resolve_signal(row, signal, gripper_index)
    if sig is None or values is None or sig.gripper_index is None or len(values) < 2:
        return []
    g = values[:, sig.gripper_index]
    spread = float(np.ptp(g))
    if spread > 1e-6 * max(1.0, float(np.max(np.abs(g)))):
        return []
    return [QualityFinding("gripper_constant", int(row["episode_index"]),
                           f"{sig.column}[{sig.gripper_index}] (the gripper, from {sig.gripper_from}) is {float(g[0]):g} "
                           f"on every frame", None, 0.0, spread)]


def check_episode(row: Mapping[str, Any], provider: FrameProvider | None, config: QualityConfig, *,
                  neighbour_lengths: Sequence[int] = (), signal: str = "observation.state",
                  gripper_index: int | None = None, pictures: Pictures | None = None) -> list[QualityFinding]:
    """Every finding of one episode row (`dataset.load_episodes`), using `provider` to decode frames (or the
    frames `check_episodes` decoded for every episode at once)."""
    e = int(row["episode_index"])
    out: list[QualityFinding] = []
    for cam in row.get("cameras") or []:
        skip: set[int] = set()
        if cam.get("storage") == "video":
            found, skip = _missing_frames(row, cam, provider)
            out += found
            if found:  # a camera missing frames is flagged already; the provider refuses to decode such a camera
                continue
        out += _picture_checks(row, cam, provider, config, skip, pictures)
    lengths = [int(n) for n in neighbour_lengths]
    if len(lengths) >= 2:
        median = float(np.median(lengths))
        length = int(row["length"])
        if median > 0 and length < config.short_fraction * median:
            out.append(QualityFinding("short_episode", e, f"{length} frames, {length / median:.0%} of the median "
                                      f"{median:g} of its {len(lengths)} neighbours", None, None, length / median))
    try:
        out += _gripper_check(row, signal, gripper_index)
    except Exception as exc:  # noqa: BLE001 - an unreadable signal is reported by the modules that need it
        logger.debug("episode %d: gripper check skipped (%s)", e, exc)
    return out


def check_episodes(rows: Sequence[Mapping[str, Any]], provider: FrameProvider | None, config: QualityConfig, *,
                   signal: str = "observation.state", gripper_index: int | None = None) -> dict[int, list[QualityFinding]]:
    """{episode index: findings} for the episodes with at least one finding (rows in episode order).

    Lengths are compared with up to `config.neighbours` episodes on each side among `rows`."""
    rows = sorted(rows, key=lambda r: int(r["episode_index"]))
    lengths = [int(r["length"]) for r in rows]
    out: dict[int, list[QualityFinding]] = {}
    k = max(1, config.neighbours)
    pictures = _decode_pictures(rows, provider, config)
    for i, row in enumerate(rows):
        near = lengths[max(0, i - k) : i] + lengths[i + 1 : i + 1 + k]
        found = check_episode(row, provider, config, neighbour_lengths=near, signal=signal, gripper_index=gripper_index,
                              pictures=pictures)
        if found:
            out[int(row["episode_index"])] = found
    return out


def bad_episodes(findings: Mapping[int, Sequence[QualityFinding]]) -> list[int]:
    return sorted(e for e, f in findings.items() if f)


def findings_as_dict(findings: Mapping[int, Sequence[QualityFinding]]) -> dict[str, list[dict[str, Any]]]:
    """JSON-ready form for provenance (episode keys as strings, like JSON objects need)."""
    return {str(e): [f.as_dict() for f in fs] for e, fs in sorted(findings.items())}


def findings_summary(findings: Mapping[int, Sequence[QualityFinding]], limit: int = 20) -> list[str]:
    """One line per finding (at most `limit`, then a count), for the run summary."""
    lines = [f"quality: {f}" for _, fs in sorted(findings.items()) for f in fs]
    if len(lines) > limit:
        lines = lines[:limit] + [f"quality: ... and {len(lines) - limit} more findings"]
    return lines
