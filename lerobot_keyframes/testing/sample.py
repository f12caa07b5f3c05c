"""The sample dataset generator: a small, valid LeRobot v3.0 dataset rendered from scratch.

It is the embedded default dataset (`default_sample_dataset`, cached per parameter set) and the test
fixture for every other part of the package. The layout follows what lerobot 0.6 writes: one row
group per episode in the data parquet, several episodes per mp4 (one continuous stream) with
`from_timestamp`/`to_timestamp`, episode stats columns, and a `ground_truth.json` sidecar with the
phase boundaries the renderer used, so keyframes and subtasks can be scored against it.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from . import render

logger = logging.getLogger(__name__)

# Bump whenever the output of a given parameter set changes: it keys the on-demand cache.
GENERATOR_VERSION = "2"

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
GROUND_TRUTH_FILE = "ground_truth.json"
CACHE_ENV = "LEROBOT_KEYFRAMES_CACHE"

# Encoder settings written into info.json the way lerobot records its VideoEncoderConfig.
_ENCODERS: dict[str, dict[str, Any]] = {
    # lp=1: fewer SVT-AV1 threads; its thread pool was seen to deadlock or emit unmuxable packets when the
    # machine is heavily oversubscribed (test suites run many encoders at once on 2 cores).
    "av1": {"vcodec": "libsvtav1", "g": 2, "crf": 30, "preset": 12, "extra_options": {"svtav1-params": "lp=1"}},
    # No B-frames: packets stay in presentation order, so episodes concatenate with monotonic dts.
    "h264": {
        "vcodec": "libx264",
        "g": 2,
        "crf": 30,
        "preset": "veryfast",
        "extra_options": {"bf": 0, "x264-params": "mbtree=0"},
    },
}
_QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_DEFAULT_FEATURES = {
    "timestamp": "float32",
    "frame_index": "int64",
    "episode_index": "int64",
    "index": "int64",
    "task_index": "int64",
}


@dataclass(frozen=True)
class SampleSpec:
    """Every knob of the generator, checked once (the CLI flags map onto these fields)."""

    episodes: int = 4
    cameras: tuple[str, ...] = ("front", "wrist")
    fps: int = 30
    codec: str = "av1"
    image_camera: str | None = None
    max_video_file_mb: float | None = None
    episodes_per_data_file: int | None = None
    seed: int = 0
    width: int = 320
    height: int = 240
    episode_seconds: float = 6.0
    robot_type: str = "sample_arm"
    frame_badge: bool = False  # draw the frame number as black/white squares (top-left) into every video frame
    chunks_size: int = field(default=CHUNKS_SIZE, repr=False)

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        need(
            is_int(self.episodes) and self.episodes >= 1,
            f"episodes must be an integer >= 1, got {self.episodes!r}",
        )
        need(is_int(self.fps) and self.fps >= 1, f"fps must be an integer >= 1, got {self.fps!r}")
        need(self.codec in _ENCODERS, f"codec must be one of {sorted(_ENCODERS)}, got {self.codec!r}")
        names = [*self.cameras, *([self.image_camera] if self.image_camera is not None else [])]
        for name in names:
            need(
                isinstance(name, str) and bool(_NAME_RE.match(name)),
                f"camera name {name!r} must be non-empty letters, digits, '_', '-' or '.'",
            )
        need(len(set(names)) == len(names), f"camera names must be distinct, got {names}")
        for dim, value in (("width", self.width), ("height", self.height)):
            need(
                is_int(value) and value >= 16 and value % 2 == 0,
                f"{dim} must be an even integer >= 16 (yuv420p video), got {value!r}",
            )
        need(
            self.max_video_file_mb is None or self.max_video_file_mb > 0,
            f"max_video_file_mb must be positive, got {self.max_video_file_mb!r}",
        )
        need(
            self.episodes_per_data_file is None
            or (is_int(self.episodes_per_data_file) and self.episodes_per_data_file >= 1),
            f"episodes_per_data_file must be an integer >= 1, got {self.episodes_per_data_file!r}",
        )
        need(is_int(self.seed) and self.seed >= 0, f"seed must be an integer >= 0, got {self.seed!r}")
        need(is_int(self.chunks_size) and self.chunks_size >= 1, "chunks_size must be an integer >= 1")
        min_frames = math.floor(self.episode_seconds * self.fps * 0.9)
        need(
            self.episode_seconds > 0 and min_frames >= render.MIN_EPISODE_FRAMES,
            f"episode_seconds={self.episode_seconds} at fps={self.fps} is too short: an episode needs "
            f"{render.MIN_EPISODE_FRAMES} frames (3 per phase); raise episode_seconds or fps",
        )
        need(isinstance(self.robot_type, str), f"robot_type must be a string, got {self.robot_type!r}")

    @property
    def video_keys(self) -> list[str]:
        return [f"observation.images.{name}" for name in self.cameras]

    @property
    def image_key(self) -> str | None:
        return None if self.image_camera is None else f"observation.images.{self.image_camera}"


def _normalize_cameras(cameras: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(cameras, str):
        return tuple(c.strip() for c in cameras.split(",") if c.strip())
    return tuple(cameras)


def make_sample_dataset(
    out: str | Path,
    *,
    episodes: int = 4,
    cameras: Sequence[str] = ("front", "wrist"),
    fps: int = 30,
    codec: str = "av1",
    image_camera: str | None = None,
    max_video_file_mb: float | None = None,
    episodes_per_data_file: int | None = None,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    episode_seconds: float = 6.0,
    robot_type: str = "sample_arm",
    overwrite: bool = False,
    frame_badge: bool = False,
) -> Path:
    """Write a procedurally rendered LeRobot v3.0 dataset to `out` and return its absolute path.

    The dataset is built next to `out` and moved into place at the end, so `out` never holds a
    half-written dataset. `out` must not exist (or be an empty directory) unless `overwrite=True`.
    """
    spec = SampleSpec(
        episodes=episodes,
        cameras=_normalize_cameras(cameras),
        fps=fps,
        codec=codec,
        image_camera=image_camera,
        max_video_file_mb=max_video_file_mb,
        episodes_per_data_file=episodes_per_data_file,
        seed=seed,
        width=width,
        height=height,
        episode_seconds=episode_seconds,
        robot_type=robot_type,
        frame_badge=frame_badge,
    )
    return write_sample_dataset(out, spec, overwrite=overwrite)


def restore_scheduling() -> None:
    """SVT-AV1 switches the calling thread to SCHED_FIFO 99 when it may (as root); children inherit it and a
    busy real-time thread starves a 2-core machine. Put the thread back to the normal policy."""
    if hasattr(os, "sched_setscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def av_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError,)


def _is_sample(path: Path) -> bool:
    """Whether `path` is a dataset this generator wrote (its ground_truth.json names the generator)."""
    try:
        record = json.loads((path / "ground_truth.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "generator" in record


def write_sample_dataset(out: str | Path, spec: SampleSpec, *, overwrite: bool = False) -> Path:
    """`make_sample_dataset` for an already built `SampleSpec` (tests use it for small `chunks_size`)."""
    out = Path(out).expanduser().absolute()
    if out.exists() and not _is_empty_dir(out) and not overwrite:
        raise FileExistsError(
            f"{out} already exists and is not empty; pass overwrite=True (CLI: --overwrite)"
        )
    if out.exists() and not _is_empty_dir(out) and not _is_sample(out):
        raise FileExistsError(  # `sample ~/my_dataset --overwrite` must never delete a real dataset
            f"{out} holds files that are not a sample dataset (no ground_truth.json from this generator); "
            "--overwrite replaces only an earlier sample. Choose another folder."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_dir(out.parent, out.name)
    try:
        try:
            _write_dataset(tmp, spec, shown_as=out)
        except av_errors() as exc:  # a rare encoder/muxer failure under heavy load: start over once
            logger.warning("sample dataset: encoding failed (%s); trying again", exc)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp = _fresh_dir(out.parent, out.name)
            _write_dataset(tmp, spec, shown_as=out)
        restore_scheduling()
        if out.is_dir() and not out.is_symlink():
            shutil.rmtree(out)
        elif out.exists() or out.is_symlink():
            out.unlink()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def cache_dir() -> Path:
    """Root of the user cache: $LEROBOT_KEYFRAMES_CACHE, else ~/.cache/lerobot_keyframes."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lerobot_keyframes"


def default_sample_dataset(**kwargs: Any) -> Path:
    """The embedded sample dataset, generated on first use into the user cache and reused afterwards.

    Accepts the keyword arguments of `make_sample_dataset` (except `out` and `overwrite`). Each
    parameter set (plus the generator version) gets its own directory, built in a temporary directory
    and renamed into place, so concurrent callers and pytest-xdist workers never see a partial dataset.
    """
    for reserved in ("out", "overwrite"):
        if reserved in kwargs:
            raise TypeError(f"default_sample_dataset() does not take {reserved!r}; use make_sample_dataset()")
    bound = inspect.signature(make_sample_dataset).bind(None, **kwargs)
    bound.apply_defaults()
    params = {k: v for k, v in bound.arguments.items() if k not in ("out", "overwrite")}
    params["cameras"] = _normalize_cameras(params["cameras"])
    spec = SampleSpec(**params)
    key = json.dumps({"generator": GENERATOR_VERSION, **_jsonable(_spec_params(spec, keep=("chunks_size",)))},
                     sort_keys=True)
    samples = cache_dir() / "samples"
    root = samples / hashlib.sha256(key.encode()).hexdigest()[:16]
    if (root / "meta" / "info.json").is_file():
        return root
    samples.mkdir(parents=True, exist_ok=True)
    if root.exists():  # not ours: datasets only ever appear here complete, by rename
        logger.warning("removing incomplete cached sample dataset %s", root)
        shutil.rmtree(root, ignore_errors=True)
    tmp = _fresh_dir(samples, root.name)
    try:
        _write_dataset(tmp, spec, shown_as=root)
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / "meta" / "info.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _fresh_dir(parent: Path, name: str) -> Path:
    # os.mkdir (not tempfile.mkdtemp) so the final directory gets the usual umask-based mode.
    tmp = parent / f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial"
    tmp.mkdir()
    return tmp


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


# -- writing --------------------------------------------------------------------------------------
def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


class _VideoWriter:
    """One camera's mp4 files, written the way lerobot does it: each episode is encoded on its own
    (starting with a keyframe) and appended to the current file by packet copy, one continuous stream
    with continuous timestamps. A file is closed once it holds `max_video_file_mb`; episode sizes are
    exact (the episode's encoder is flushed), so roll-over points are deterministic."""

    def __init__(self, root: Path, key: str, spec: SampleSpec) -> None:
        import av

        self._av = av
        self.root = root
        self.key = key
        self.spec = spec
        self.encoder = _ENCODERS[spec.codec]
        limit_mb = spec.max_video_file_mb if spec.max_video_file_mb is not None else VIDEO_FILES_SIZE_IN_MB
        self.limit_bytes = limit_mb * 1024 * 1024
        self.chunk, self.file = 0, 0
        self.container: Any = None
        self.stream: Any = None
        self.frames_in_file = 0
        self.bytes_in_file = 0
        self.paths: list[Path] = []
        self._episode: Any = None
        self._episode_stream: Any = None
        self._episode_buf: io.BytesIO | None = None
        self._episode_frames = 0

    def close(self) -> None:
        if self._episode is not None:
            self._episode.close()
            self._episode = None
        if self.container is not None:
            self.container.close()
            self.container = None
            self.stream = None

    def begin_episode(self) -> tuple[int, int, float]:
        """Chunk, file and from_timestamp of the episode about to be encoded."""
        if self.container is not None and self.bytes_in_file >= self.limit_bytes:
            self.close()
            self.chunk, self.file = _next_file(self.chunk, self.file, self.spec.chunks_size)
        if self.container is None:
            path = self.root / VIDEO_PATH.format(
                video_key=self.key, chunk_index=self.chunk, file_index=self.file
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            self.container = self._av.open(str(path), "w")
            self.frames_in_file = 0
            self.bytes_in_file = 0
            self.paths.append(path)
        self._episode_buf = io.BytesIO()
        self._episode = self._av.open(self._episode_buf, "w", format="mp4")
        options = {k: str(v) for k, v in self.encoder.items() if k not in ("vcodec", "extra_options")}
        options.update({k: str(v) for k, v in self.encoder.get("extra_options", {}).items()})
        self._episode_stream = self._episode.add_stream(
            self.encoder["vcodec"], rate=self.spec.fps, options=options
        )
        self._episode_stream.width = self.spec.width
        self._episode_stream.height = self.spec.height
        self._episode_stream.pix_fmt = "yuv420p"
        self._episode_frames = 0
        return self.chunk, self.file, self.frames_in_file / self.spec.fps

    def encode(self, rgb: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self._episode_frames
        frame.time_base = Fraction(1, self.spec.fps)
        self._episode.mux(self._episode_stream.encode(frame))
        self._episode_frames += 1

    def end_episode(self) -> None:
        """Flush the episode's encoder and append its packets to the current file."""
        self._episode.mux(self._episode_stream.encode(None))
        restore_scheduling()
        self._episode.close()
        self._episode = None
        assert self._episode_buf is not None
        self._episode_buf.seek(0)
        with self._av.open(self._episode_buf, "r", format="mp4") as source:
            src = source.streams.video[0]
            if self.stream is None:
                self.stream = self.container.add_stream_from_template(src, opaque=True)
            offset = Fraction(self.frames_in_file, self.spec.fps) / src.time_base
            if offset.denominator != 1:
                raise RuntimeError(f"{self.key}: fps {self.spec.fps} is not representable in {src.time_base}")
            for packet in source.demux(src):
                if packet.size == 0:
                    continue
                packet.pts += int(offset)
                packet.dts += int(offset)
                packet.stream = self.stream
                self.bytes_in_file += packet.size
                self.container.mux(packet)
        self.frames_in_file += self._episode_frames
        self._episode_buf = None

    def video_info(self) -> dict[str, Any]:
        """The feature `info` block, probed from the first file like lerobot's get_video_info."""
        with self._av.open(str(self.paths[0])) as container:
            stream = container.streams.video[0]
            info: dict[str, Any] = {
                "video.height": stream.height,
                "video.width": stream.width,
                "video.codec": stream.codec_context.codec.canonical_name,
                "video.pix_fmt": stream.codec_context.pix_fmt,
                "video.is_depth_map": False,
                "video.fps": int(stream.base_rate) if stream.base_rate else self.spec.fps,
                "video.channels": 3,
                "has_audio": len(container.streams.audio) > 0,
            }
        info.update(
            {
                "video.g": self.encoder["g"],
                "video.crf": self.encoder["crf"],
                "video.preset": self.encoder["preset"],
                "video.fast_decode": 0,
                "video.video_backend": "pyav",
                "video.extra_options": dict(self.encoder.get("extra_options", {})),
                # Newer lerobot names the depth flag without the prefix; readers accept either.
                "is_depth_map": False,
            }
        )
        return info


class _DataWriter:
    """Data parquet files: one row group per episode, rolled by episode count or file size."""

    def __init__(self, root: Path, schema: Any, spec: SampleSpec) -> None:
        import pyarrow.parquet as pq

        self._pq = pq
        self.root = root
        self.schema = schema
        self.spec = spec
        self.chunk, self.file = 0, 0
        self.writer: Any = None
        self.path: Path | None = None
        self.episodes_in_file = 0

    def write_episode(self, table: Any) -> tuple[int, int]:
        if self.writer is not None:
            full = (
                self.spec.episodes_per_data_file is not None
                and self.episodes_in_file >= self.spec.episodes_per_data_file
            )
            assert self.path is not None
            if full or self.path.stat().st_size >= DATA_FILES_SIZE_IN_MB * 1024 * 1024:
                self.close()
                self.chunk, self.file = _next_file(self.chunk, self.file, self.spec.chunks_size)
        if self.writer is None:
            self.path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = self._pq.ParquetWriter(self.path, self.schema, compression="snappy")
            self.episodes_in_file = 0
        self.writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.episodes_in_file += 1
        return self.chunk, self.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _feature_stats(values: np.ndarray, axis: int | tuple[int, ...], count: int) -> dict[str, np.ndarray]:
    """lerobot's per-episode stats: min, max, mean, std, count, then quantiles."""
    keep = values.ndim == 1
    stats = {
        "min": np.min(values, axis=axis, keepdims=keep),
        "max": np.max(values, axis=axis, keepdims=keep),
        "mean": np.mean(values, axis=axis, keepdims=keep),
        "std": np.std(values, axis=axis, keepdims=keep),
        "count": np.array([count]),
    }
    quantiles = np.quantile(values, list(_QUANTILES.values()), axis=axis, keepdims=keep)
    for i, name in enumerate(_QUANTILES):
        stats[name] = quantiles[i]
    return stats


def _image_stats(frames: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per-channel stats of sampled frames in [0, 1], shaped (3, 1, 1) like lerobot's image stats."""
    stack = np.stack(frames).astype(np.float32) / 255.0  # (k, h, w, 3)
    stats = _feature_stats(stack.transpose(3, 0, 1, 2).reshape(3, -1).T, axis=0, count=len(frames))
    return {k: v if k == "count" else v.reshape(3, 1, 1).astype(np.float64) for k, v in stats.items()}


def _aggregate(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset stats from episode stats (count-weighted mean, pooled variance, weighted quantiles)."""
    counts = np.array([s["count"][0] for s in per_episode], dtype=np.float64)
    weights = counts / counts.sum()

    def wsum(name: str) -> np.ndarray:
        return sum(w * np.asarray(s[name], dtype=np.float64) for w, s in zip(weights, per_episode))

    mean = wsum("mean")
    var = sum(
        w
        * (
            np.asarray(s["std"], dtype=np.float64) ** 2
            + (np.asarray(s["mean"], dtype=np.float64) - mean) ** 2
        )
        for w, s in zip(weights, per_episode)
    )
    out = {
        "min": np.min(np.stack([s["min"] for s in per_episode]), axis=0),
        "max": np.max(np.stack([s["max"] for s in per_episode]), axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(counts.sum())]),
    }
    for name in _QUANTILES:
        out[name] = wsum(name)
    return out


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _hf_features(spec: SampleSpec, state_dim: int) -> dict[str, Any]:
    """The `datasets` feature dict stored in the parquet schema metadata (what `datasets` itself writes)."""
    vector = {"feature": {"dtype": "float32", "_type": "Value"}, "length": state_dim, "_type": "List"}
    feats: dict[str, Any] = {"observation.state": vector, "action": dict(vector)}
    if spec.image_key is not None:
        feats[spec.image_key] = {"_type": "Image"}
    for name, dtype in _DEFAULT_FEATURES.items():
        feats[name] = {"dtype": dtype, "_type": "Value"}
    return feats


def _data_schema(spec: SampleSpec, state_dim: int) -> Any:
    import pyarrow as pa

    fields = [
        pa.field("observation.state", pa.list_(pa.float32(), state_dim)),
        pa.field("action", pa.list_(pa.float32(), state_dim)),
    ]
    if spec.image_key is not None:
        fields.append(pa.field(spec.image_key, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
    types = {"float32": pa.float32(), "int64": pa.int64()}
    fields += [pa.field(name, types[dtype]) for name, dtype in _DEFAULT_FEATURES.items()]
    meta = {"huggingface": json.dumps({"info": {"features": _hf_features(spec, state_dim)}})}
    return pa.schema(fields, metadata=meta)


def _feature_names(spec: SampleSpec) -> list[str]:
    """info.json feature order: user features first, then lerobot's default columns."""
    image = [spec.image_key] if spec.image_key is not None else []
    return ["observation.state", "action", *spec.video_keys, *image, *_DEFAULT_FEATURES]


def _features(spec: SampleSpec, video_infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    dim = len(render.STATE_NAMES)
    feats: dict[str, Any] = {
        "observation.state": {"dtype": "float32", "shape": [dim], "names": list(render.STATE_NAMES)},
        "action": {"dtype": "float32", "shape": [dim], "names": list(render.STATE_NAMES)},
    }
    camera = {"shape": [spec.height, spec.width, 3], "names": ["height", "width", "channels"]}
    for key in spec.video_keys:
        feats[key] = {"dtype": "video", **camera, "info": video_infos[key]}
    if spec.image_key is not None:
        feats[spec.image_key] = {"dtype": "image", **camera}
    for name, dtype in _DEFAULT_FEATURES.items():
        feats[name] = {"dtype": dtype, "shape": [1], "names": None}
    return feats


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n")


def episode_plans(spec: SampleSpec) -> list[render.EpisodePlan]:
    """The per-episode plans (task, placement, timing) a spec renders; about 3/4 of the episodes get
    distinct tasks, the rest repeat earlier ones, so datasets have both distinct and shared tasks."""
    n_tasks = 1 if spec.episodes == 1 else max(2, math.ceil(spec.episodes * 3 / 4))
    pool = render.task_pool(spec.seed, n_tasks)
    return [
        render.plan_episode(spec.seed, i, pool[i % n_tasks], spec.fps, spec.episode_seconds)
        for i in range(spec.episodes)
    ]


def spec_from_ground_truth(root: str | Path) -> SampleSpec:
    """The `SampleSpec` a generated dataset was made from (read back from its ground_truth.json)."""
    params = json.loads((Path(root) / GROUND_TRUTH_FILE).read_text())["generator"]["params"]
    params["cameras"] = tuple(params["cameras"])
    return SampleSpec(**params)


def _spec_params(spec: SampleSpec, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The spec as recorded; `frame_badge` only when on, so datasets without it keep their exact bytes."""
    return {k: v for k, v in asdict(spec).items()
            if (k != "chunks_size" or k in keep) and not (k == "frame_badge" and not v)}


def clean_frame(spec: SampleSpec, episode_index: int, camera: str, frame_index: int) -> np.ndarray:
    """The noise-free render of one frame: what the video shows before sensor noise and codec loss.

    Tests compare decoded frames with it to prove a timestamp maps to the intended frame.
    """
    plan = episode_plans(spec)[episode_index]
    traj = render.trajectory(plan)
    cam = render.make_camera(camera, plan, traj, render.table_texture(plan), spec.width, spec.height)
    return cam.render(frame_index)


def _write_dataset(root: Path, spec: SampleSpec, *, shown_as: Path) -> None:
    """Write the dataset into `root` (a temporary folder); the log names `shown_as`, where it is renamed to."""
    os.environ.setdefault("SVT_LOG", "1")  # keep SVT-AV1's banner off the user's terminal
    started = time.perf_counter()
    plans = episode_plans(spec)
    tasks = _task_list(plans)
    schema = _data_schema(spec, len(render.STATE_NAMES))
    data_writer = _DataWriter(root, schema, spec)
    video_writers = {key: _VideoWriter(root, key, spec) for key in spec.video_keys}
    camera_names = _camera_names(spec)

    rows: list[dict[str, Any]] = []
    per_feature_stats: dict[str, list[dict[str, np.ndarray]]] = {}
    ground_truth: list[dict[str, Any]] = []
    global_index = 0
    try:
        for plan in plans:
            row, ep_stats = _write_episode(
                spec, plan, camera_names, data_writer, video_writers, tasks.index(plan.task.text), global_index
            )
            for name, stats in ep_stats.items():
                per_feature_stats.setdefault(name, []).append(stats)
            rows.append(row)
            ground_truth.append(_episode_truth(plan, spec.fps))
            global_index += plan.length
    finally:
        data_writer.close()
        for writer in video_writers.values():
            writer.close()

    video_infos = {key: writer.video_info() for key, writer in video_writers.items()}
    features = _features(spec, video_infos)
    _write_json(root / "meta" / "info.json", _info(spec, features, global_index, len(tasks)))
    stats = {
        name: {k: v.tolist() for k, v in _aggregate(per_feature_stats[name]).items()} for name in features
    }
    _write_json(root / "meta" / "stats.json", stats)
    _write_tasks(root / "meta" / "tasks.parquet", tasks)
    _write_episodes(root / EPISODES_PATH.format(chunk_index=0, file_index=0), rows)
    _write_json(root / GROUND_TRUTH_FILE, _ground_truth_record(spec, ground_truth))
    logger.info(
        "sample dataset: %d episodes, %d frames, %d cameras (%s) in %.1f s -> %s",
        spec.episodes,
        global_index,
        len(camera_names),
        spec.codec,
        time.perf_counter() - started,
        shown_as,
    )


def _task_list(plans: list[render.EpisodePlan]) -> list[str]:
    """Distinct task strings in first-seen order (their position is the task_index)."""
    tasks: list[str] = []
    for plan in plans:
        if plan.task.text not in tasks:
            tasks.append(plan.task.text)
    return tasks


def _camera_names(spec: SampleSpec) -> dict[str, str]:
    """Feature key -> camera name, video cameras first, then the image camera."""
    camera_names = dict(zip(spec.video_keys, spec.cameras))
    if spec.image_key is not None:
        camera_names[spec.image_key] = spec.image_camera  # type: ignore[assignment]
    return camera_names


def _write_episode(
    spec: SampleSpec,
    plan: render.EpisodePlan,
    camera_names: dict[str, str],
    data_writer: _DataWriter,
    video_writers: dict[str, _VideoWriter],
    task_index: int,
    global_index: int,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Render, encode and store one episode; returns its meta/episodes row and its feature stats."""
    traj = render.trajectory(plan)
    video_loc = {key: writer.begin_episode() for key, writer in video_writers.items()}
    samples, pngs = _render_episode(spec, plan, traj, camera_names, video_writers)
    for writer in video_writers.values():
        writer.end_episode()
    arrays = _episode_arrays(spec, plan, traj, task_index, global_index)
    chunk, file = data_writer.write_episode(_episode_table(spec, data_writer.schema, arrays, pngs))
    ep_stats = _episode_stats(arrays, samples, plan.length)
    row = _episode_row(spec, plan, (chunk, file), video_loc, ep_stats, global_index)
    return row, ep_stats


def _render_episode(
    spec: SampleSpec,
    plan: render.EpisodePlan,
    traj: Any,
    camera_names: dict[str, str],
    video_writers: dict[str, _VideoWriter],
) -> tuple[dict[str, list[np.ndarray]], list[dict[str, Any]]]:
    """Every camera's noisy frames: video cameras go to their encoder, the image camera to PNG structs.

    Returns the downsampled frames kept for image stats (per feature key) and the PNG column values.
    """
    n = plan.length
    tex = render.table_texture(plan)
    cams = {
        key: render.make_camera(name, plan, traj, tex, spec.width, spec.height)
        for key, name in camera_names.items()
    }
    noise = {
        key: np.random.default_rng([spec.seed, plan.index, 23, *name.encode()])
        for key, name in camera_names.items()
    }
    sampled = set(np.round(np.linspace(0, n - 1, min(n, 25))).astype(int).tolist())
    stride = 4 if max(spec.width, spec.height) >= 256 else 2 if max(spec.width, spec.height) >= 96 else 1
    samples: dict[str, list[np.ndarray]] = {key: [] for key in cams}
    pngs: list[dict[str, Any]] = []
    for f in range(n):
        for key, cam in cams.items():
            rgb = render.add_noise(cam.render(f), noise[key])
            if spec.frame_badge:
                render.draw_frame_badge(rgb, f)
            if key in video_writers:
                video_writers[key].encode(rgb)
            else:
                pngs.append({"bytes": _png(rgb), "path": f"frame-{f:06d}.png"})
            if f in sampled:
                samples[key].append(rgb[::stride, ::stride])
    return samples, pngs


def _episode_arrays(
    spec: SampleSpec, plan: render.EpisodePlan, traj: Any, task_index: int, global_index: int
) -> dict[str, np.ndarray]:
    """The episode's numeric columns: state, action, then lerobot's default columns in schema order."""
    n = plan.length
    frame_index = np.arange(n, dtype=np.int64)
    return {
        "observation.state": traj.state(np.random.default_rng([spec.seed, plan.index, 31])),
        "action": traj.action(),
        "timestamp": (frame_index / spec.fps).astype(np.float32),  # lerobot: frame_index / fps, as float32
        "frame_index": frame_index,
        "episode_index": np.full(n, plan.index, dtype=np.int64),
        "index": np.arange(global_index, global_index + n, dtype=np.int64),
        "task_index": np.full(n, task_index, dtype=np.int64),
    }


def _episode_table(
    spec: SampleSpec, schema: Any, arrays: dict[str, np.ndarray], pngs: list[dict[str, Any]]
) -> Any:
    """The episode's rows as one arrow table in the data schema."""
    import pyarrow as pa

    state_dim = len(render.STATE_NAMES)
    columns: dict[str, Any] = {
        name: pa.FixedSizeListArray.from_arrays(pa.array(arrays[name].ravel()), state_dim)
        for name in ("observation.state", "action")
    }
    if spec.image_key is not None:
        columns[spec.image_key] = pa.array(pngs, type=schema.field(spec.image_key).type)
    columns.update({name: pa.array(arrays[name]) for name in _DEFAULT_FEATURES})
    return pa.table(columns, schema=schema)


def _episode_stats(
    arrays: dict[str, np.ndarray], samples: dict[str, list[np.ndarray]], n: int
) -> dict[str, dict[str, np.ndarray]]:
    """Per-feature episode stats: vectors, then camera images (from sampled frames), then default columns."""
    ep_stats = {name: _feature_stats(arrays[name], 0, n) for name in ("observation.state", "action")}
    for key, frames in samples.items():
        ep_stats[key] = _image_stats(frames)
    for name in _DEFAULT_FEATURES:
        ep_stats[name] = _feature_stats(arrays[name], 0, n)
    return ep_stats


def _episode_row(
    spec: SampleSpec,
    plan: render.EpisodePlan,
    data_loc: tuple[int, int],
    video_loc: dict[str, tuple[int, int, float]],
    ep_stats: dict[str, dict[str, np.ndarray]],
    global_index: int,
) -> dict[str, Any]:
    """One meta/episodes row: where the episode's data and video live, and its flattened stats."""
    n = plan.length
    row: dict[str, Any] = {
        "episode_index": plan.index,
        "tasks": [plan.task.text],
        "length": n,
        "data/chunk_index": data_loc[0],
        "data/file_index": data_loc[1],
        "dataset_from_index": global_index,
        "dataset_to_index": global_index + n,
    }
    for key, (v_chunk, v_file, from_ts) in video_loc.items():
        row[f"videos/{key}/chunk_index"] = v_chunk
        row[f"videos/{key}/file_index"] = v_file
        row[f"videos/{key}/from_timestamp"] = float(from_ts)
        row[f"videos/{key}/to_timestamp"] = float(from_ts + n / spec.fps)
    for name in _feature_names(spec):
        for stat, value in ep_stats[name].items():
            row[f"stats/{name}/{stat}"] = value.tolist()
    row["meta/episodes/chunk_index"] = 0
    row["meta/episodes/file_index"] = 0
    return row


def _info(spec: SampleSpec, features: dict[str, Any], total_frames: int, total_tasks: int) -> dict[str, Any]:
    """meta/info.json."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": spec.robot_type,
        "total_episodes": spec.episodes,
        "total_frames": total_frames,
        "total_tasks": total_tasks,
        "chunks_size": spec.chunks_size,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": (
            spec.max_video_file_mb if spec.max_video_file_mb is not None else VIDEO_FILES_SIZE_IN_MB
        ),
        "fps": spec.fps,
        "splits": {"train": f"0:{spec.episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if spec.video_keys else None,
        "features": features,
    }


def _write_episodes(path: Path, rows: list[dict[str, Any]]) -> None:
    """meta/episodes parquet: one row per episode, columns in the rows' key order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    pq.write_table(pa.Table.from_pydict(columns), path, compression="snappy")


def _ground_truth_record(spec: SampleSpec, episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """ground_truth.json: the generator's parameters and every episode's true phase timing."""
    return {
        "generator": {
            "name": "lerobot_keyframes.testing.sample",
            "version": GENERATOR_VERSION,
            "params": _jsonable(_spec_params(spec)),
        },
        "fps": spec.fps,
        "phase_names": list(render.PHASES),
        "state_names": list(render.STATE_NAMES),
        "notes": (
            "Times are frame_index / fps (seconds from episode start). Phase 'end' is exclusive "
            "(the next phase's start). grasp_time: first frame with the gripper fully closed; "
            "release_time: first frame where it starts opening. observation.state[-1] is the measured "
            "gripper (0 open, 1 closed); action[-1] is the binary gripper command."
        ),
        "episodes": episodes,
    }


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as lerobot writes it: task_index column, task strings as the pandas index."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(
        {"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(tasks, name="task")
    )
    table = pa.Table.from_pandas(frame)
    # pandas >= 3 makes strings large_string; lerobot's files (pandas 2) hold plain string.
    i = table.schema.get_field_index("task")
    table = table.cast(table.schema.set(i, pa.field("task", pa.string())))
    pq.write_table(table, path, compression="snappy")


def _episode_truth(plan: render.EpisodePlan, fps: int) -> dict[str, Any]:
    def t(frame: int) -> float:
        return frame / fps

    return {
        "episode_index": plan.index,
        "task": plan.task.text,
        "length": plan.length,
        "duration": t(plan.length),
        "phases": {
            name: {"start": t(a), "end": t(b), "start_frame": a, "end_frame": b}
            for name, (a, b) in plan.phases.items()
        },
        "grasp_time": t(plan.grasp_frame),
        "grasp_frame": plan.grasp_frame,
        "release_time": t(plan.release_frame),
        "release_frame": plan.release_frame,
        "object": {
            "color": plan.task.object_color,
            "shape": plan.task.object_shape,
            "rgb": list(render.COLORS[plan.task.object_color]),
            "start_xy": list(plan.object_xy),
            "end_xy": list(plan.target_xy),
            "half_size": plan.object_half,
        },
        "target": {
            "color": plan.task.target_color,
            "kind": plan.task.target_kind,
            "rgb": list(render.COLORS[plan.task.target_color]),
            "xy": list(plan.target_xy),
            "radius": plan.target_radius,
        },
    }
