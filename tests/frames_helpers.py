"""Small LeRobot v3 datasets for the frame-stack tests, with any codec and GOP (the sample generator
only writes lerobot's default GOP 2), plus an independent reference decoder.

Every frame is visibly different from its neighbours (moving bars and a seeded block pattern), so
an off-by-one frame choice can never pass a bit-exact comparison.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from lerobot_keyframes.testing.sample import restore_scheduling  # noqa: F401  (re-exported for tests)

ENCODERS = {"av1": "libsvtav1", "h264": "libx264"}


def frame_image(camera: int, n: int, width: int, height: int) -> np.ndarray:
    """A deterministic RGB frame for global frame number n of a camera."""
    rng = np.random.default_rng(1000 * camera + n)
    blocks = rng.integers(0, 256, size=(height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    img = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:height, :width].copy()
    y = (n * 5) % height
    x = (n * 7) % width
    img[y : y + 6, :, :] = 255
    img[:, x : x + 6, 1] = 0
    return img


def encode_video(
    path: Path, frames: Sequence[np.ndarray], *, fps: int, codec: str = "av1", gop: int = 2
) -> None:
    """Encode RGB frames into an mp4 (one continuous stream, pts = frame number / fps)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        options = {"g": str(gop)}
        if codec == "av1":
            options.update({"preset": "12", "crf": "35"})
        else:
            options.update({"preset": "veryfast", "crf": "28"})
        stream = container.add_stream(ENCODERS[codec], rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    restore_scheduling()


def reference_frames(path: str | Path) -> list[np.ndarray]:
    """Independent decode: every frame of the file, sequentially with PyAV, in presentation order."""
    import av

    with av.open(str(path)) as container:
        decoded = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    decoded.sort(key=lambda x: x[0])
    return [a for _, a in decoded]


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_dataset(
    root: Path,
    *,
    lengths: Sequence[int] = (40, 50, 46),
    episodes_per_file: int = 2,
    cameras: Sequence[str] = ("front",),
    image_camera: str | None = None,
    codec: str = "av1",
    gop: int = 2,
    fps: int = 30,
    width: int = 128,
    height: int = 96,
) -> Path:
    """A LeRobot v3.0 dataset: `episodes_per_file` episodes per mp4 (so from_timestamp > 0 and several
    files), float32 parquet timestamps frame_index / fps, optional PNG image camera."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    keys = [f"observation.images.{c}" for c in cameras]
    image_key = f"observation.images.{image_camera}" if image_camera else None
    video_path = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    data_path = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)

    ep_rows: dict[str, list] = {k: [] for k in (
        "episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
        "dataset_from_index", "dataset_to_index")}
    for key in keys:
        for col in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
            ep_rows[f"videos/{key}/{col}"] = []

    groups = [list(range(i, min(i + episodes_per_file, len(lengths)))) for i in range(0, len(lengths), episodes_per_file)]
    for file_index, eps in enumerate(groups):
        for cam_i, key in enumerate(keys):
            frames = [frame_image(cam_i, n, width, height) for e in eps for n in range(starts[e], starts[e + 1])]
            encode_video(root / video_path.format(video_key=key, chunk_index=0, file_index=file_index), frames,
                         fps=fps, codec=codec, gop=gop)
        offset = 0
        for e in eps:
            for key in keys:
                ep_rows[f"videos/{key}/chunk_index"].append(0)
                ep_rows[f"videos/{key}/file_index"].append(file_index)
                ep_rows[f"videos/{key}/from_timestamp"].append(offset / fps)
                ep_rows[f"videos/{key}/to_timestamp"].append((offset + lengths[e]) / fps)
            offset += lengths[e]

    columns: dict[str, list] = {"timestamp": [], "frame_index": [], "episode_index": [], "index": [], "task_index": []}
    if image_key:
        columns[image_key] = []
    for e, length in enumerate(lengths):
        ep_rows["episode_index"].append(e)
        ep_rows["tasks"].append(["pick the cube"])
        ep_rows["length"].append(length)
        ep_rows["data/chunk_index"].append(0)
        ep_rows["data/file_index"].append(0)
        ep_rows["dataset_from_index"].append(int(starts[e]))
        ep_rows["dataset_to_index"].append(int(starts[e + 1]))
        for i in range(length):
            columns["timestamp"].append(np.float32(i / fps))
            columns["frame_index"].append(i)
            columns["episode_index"].append(e)
            columns["index"].append(int(starts[e]) + i)
            columns["task_index"].append(0)
            if image_key:
                columns[image_key].append({"bytes": _png(frame_image(99, int(starts[e]) + i, width, height)),
                                           "path": None})

    fields = [
        pa.field("timestamp", pa.float32()), pa.field("frame_index", pa.int64()),
        pa.field("episode_index", pa.int64()), pa.field("index", pa.int64()), pa.field("task_index", pa.int64()),
    ]
    if image_key:
        fields.append(pa.field(image_key, pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
    table = pa.table(columns, schema=pa.schema(fields))
    out = root / data_path.format(chunk_index=0, file_index=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(out, table.schema) as writer:
        for e in range(len(lengths)):
            writer.write_table(table.slice(int(starts[e]), int(lengths[e])))

    (root / "meta/episodes/chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(ep_rows), root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": [0], "task": ["pick the cube"]}), root / "meta/tasks.parquet")

    features: dict = {
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    for key in keys:
        features[key] = {
            "dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": codec, "video.pix_fmt": "yuv420p",
                     "video.fps": fps, "video.g": gop, "video.is_depth_map": False},
        }
    if image_key:
        features[image_key] = {"dtype": "image", "shape": [height, width, 3], "names": ["height", "width", "channels"]}
    info = {
        "codebase_version": "v3.0", "robot_type": "test", "fps": fps, "features": features,
        "total_episodes": len(lengths), "total_frames": int(starts[-1]), "total_tasks": 1, "chunks_size": 1000,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "data_path": data_path,
        "video_path": video_path if keys else None, "splits": {"train": f"0:{len(lengths)}"},
    }
    (root / "meta/info.json").write_text(json.dumps(info, indent=2))
    return root


def image_reference(global_index: int, width: int = 128, height: int = 96) -> np.ndarray:
    """The exact RGB of an image-camera frame written by `write_dataset`."""
    return frame_image(99, global_index, width, height)


# -- shared, cached test data -------------------------------------------------------------------------

_TMP: Path | None = None
_DATASETS: dict[tuple, Path] = {}
_REFS: dict[str, list[np.ndarray]] = {}

LENGTHS = (40, 50, 46)  # episodes 0 and 1 share file-000 (from_timestamp of episode 1 > 0), episode 2 is file-001
EPISODE_FILES = {0: (0, 0), 1: (0, 40), 2: (1, 0)}  # episode -> (file index, first frame in file)
FRONT = "observation.images.front"
WRIST = "observation.images.wrist"
TOP = "observation.images.top"


def _tmp_root() -> Path:
    global _TMP
    if _TMP is None:
        import atexit
        import shutil
        import tempfile

        _TMP = Path(tempfile.mkdtemp(prefix="lk_frames_"))
        atexit.register(shutil.rmtree, _TMP, True)
    return _TMP


def cached_dataset(codec: str = "av1", gop: int = 2, **kwargs: object) -> Path:
    """`write_dataset` once per parameter set per test session."""
    key = (codec, gop, tuple(sorted(kwargs.items())))
    if key not in _DATASETS:
        name = f"{codec}_g{gop}_{len(_DATASETS)}"
        _DATASETS[key] = write_dataset(_tmp_root() / name, codec=codec, gop=gop, **kwargs)  # type: ignore[arg-type]
    return _DATASETS[key]


def video_file(root: Path, camera: str, file_index: int) -> Path:
    return root / f"videos/{camera}/chunk-000/file-{file_index:03d}.mp4"


def reference(root: Path, camera: str, episode: int) -> list[np.ndarray]:
    """Reference frames (H x W x 3) of one episode, from a sequential decode of its whole file."""
    file_index, first = EPISODE_FILES[episode]
    path = str(video_file(root, camera, file_index))
    if path not in _REFS:
        _REFS[path] = reference_frames(path)
    return _REFS[path][first : first + LENGTHS[episode]]


def parquet_times(episode: int, fps: int = 30) -> list[float]:
    """The episode's float32 parquet timestamps, as written by `write_dataset` (frame_index / fps)."""
    return [float(np.float32(i / fps)) for i in range(LENGTHS[episode])]


def as_hwc(frames: object, i: int) -> np.ndarray:
    data = frames.data[i]  # type: ignore[attr-defined]
    return data.permute(1, 2, 0).numpy()
