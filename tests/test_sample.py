"""The sample dataset generator: every file checked against the LeRobot v3 layout, every video decoded.

The checks here are independent of the generator's code: they read the files with pyarrow, decode the
videos with PyAV and compare decoded frames with noise-free renders of the intended frame.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lerobot_keyframes.testing import render
from lerobot_keyframes.testing.sample import (
    GENERATOR_VERSION,
    SampleSpec,
    clean_frame,
    default_sample_dataset,
    make_sample_dataset,
    spec_from_ground_truth,
    write_sample_dataset,
)

SMALL: dict[str, Any] = {"width": 128, "height": 96, "episode_seconds": 1.0}

INFO_KEYS = {
    "codebase_version": str,
    "robot_type": str,
    "total_episodes": int,
    "total_frames": int,
    "total_tasks": int,
    "chunks_size": int,
    "data_files_size_in_mb": (int, float),
    "video_files_size_in_mb": (int, float),
    "fps": int,
    "splits": dict,
    "data_path": str,
    "video_path": (str, type(None)),
    "features": dict,
}
VIDEO_INFO_KEYS = {
    "video.height": int,
    "video.width": int,
    "video.codec": str,
    "video.pix_fmt": str,
    "video.is_depth_map": bool,
    "video.fps": int,
    "video.channels": int,
    "has_audio": bool,
    "video.g": int,
    "video.crf": int,
}
STATS = ("min", "max", "mean", "std", "count")


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def av1_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 episodes (3 distinct tasks) x 2 cameras in one mp4 per camera, AV1 GOP 2."""
    return make_sample_dataset(tmp_path_factory.mktemp("av1") / "ds", episodes=4, **SMALL)


@pytest.fixture(scope="module")
def multi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny size limits and chunks of 2 files: several mp4 files, chunk roll-over, several data files."""
    spec = SampleSpec(
        episodes=6,
        width=96,
        height=64,
        episode_seconds=1.0,
        max_video_file_mb=0.03,
        episodes_per_data_file=4,
        chunks_size=2,
    )
    return write_sample_dataset(tmp_path_factory.mktemp("multi") / "ds", spec)


# -- an independent checker -------------------------------------------------------------------------
def _info(root: Path) -> dict[str, Any]:
    return json.loads((root / "meta" / "info.json").read_text())


def _truth(root: Path) -> dict[str, Any]:
    return json.loads((root / "ground_truth.json").read_text())


def _episodes(root: Path) -> list[dict[str, Any]]:
    paths = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    rows = [row for path in paths for row in pq.read_table(path).to_pylist()]
    return sorted(rows, key=lambda r: r["episode_index"])


def _video_keys(info: dict[str, Any]) -> list[str]:
    return [k for k, f in info["features"].items() if f["dtype"] == "video"]


def _decode_all(path: Path) -> tuple[list[np.ndarray], list[float], list[bool]]:
    frames, times, keys = [], [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.pts * frame.time_base))
            keys.append(bool(frame.key_frame))
    return frames, times, keys


def _decode_at(path: Path, t: float, fps: int) -> np.ndarray:
    """Seek to time t and return the frame shown there (a fresh decoder, not the sequential decode)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(int(round(t / stream.time_base)), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if abs(float(frame.pts * frame.time_base) - t) < 0.5 / fps:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"{path}: no frame at t={t}")


def check_dataset(root: Path) -> dict[str, Any]:
    """Assert the dataset under `root` is a consistent LeRobot v3.0 dataset; return what it read."""
    info = _info(root)
    for key, kind in INFO_KEYS.items():
        assert isinstance(info[key], kind), (key, info[key])
    assert info["codebase_version"] == "v3.0"
    fps = info["fps"]
    episodes = _episodes(root)
    n_eps = info["total_episodes"]
    assert [e["episode_index"] for e in episodes] == list(range(n_eps))
    assert info["splits"] == {"train": f"0:{n_eps}"}
    assert info["total_frames"] == sum(e["length"] for e in episodes)
    for name, dtype in (
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
    ):
        assert info["features"][name] == {"dtype": dtype, "shape": [1], "names": None}
    for name in ("observation.state", "action"):
        feat = info["features"][name]
        assert feat["dtype"] == "float32" and feat["shape"] == [len(feat["names"])]
        assert feat["names"][-1] == "gripper"

    tasks = pq.read_table(root / "meta" / "tasks.parquet")
    assert tasks.schema.field("task_index").type == pa.int64()
    assert tasks.schema.field("task").type == pa.string()
    assert tasks.to_pandas().index.name == "task"
    task_of = dict(zip(tasks["task_index"].to_pylist(), tasks["task"].to_pylist(), strict=True))
    assert sorted(task_of) == list(range(info["total_tasks"]))
    assert set(task_of.values()) == {e["tasks"][0] for e in episodes}

    # Episode metadata columns and types.
    meta = pq.read_table(sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))[0])
    schema = meta.schema
    assert schema.field("tasks").type == pa.list_(pa.string())
    for col in ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index"):
        assert schema.field(col).type == pa.int64(), col
    for col in ("dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index"):
        assert schema.field(col).type == pa.int64(), col
    for key in _video_keys(info):
        for suffix in ("chunk_index", "file_index"):
            assert schema.field(f"videos/{key}/{suffix}").type == pa.int64()
        for suffix in ("from_timestamp", "to_timestamp"):
            assert schema.field(f"videos/{key}/{suffix}").type == pa.float64()
    for feature in info["features"]:
        for stat in STATS:
            assert f"stats/{feature}/{stat}" in schema.names, (feature, stat)
    stats = json.loads((root / "meta" / "stats.json").read_text())
    assert set(stats) == set(info["features"])
    assert stats["index"]["min"] == [0] and stats["index"]["max"] == [info["total_frames"] - 1]
    assert stats["observation.state"]["count"] == [info["total_frames"]]

    # Data files: one row group per episode, exact float32 timestamps, global index.
    by_data_file: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for e in episodes:
        by_data_file[(e["data/chunk_index"], e["data/file_index"])].append(e)
    start = 0
    for (chunk, file), eps in sorted(by_data_file.items()):
        path = root / info["data_path"].format(chunk_index=chunk, file_index=file)
        parquet = pq.ParquetFile(path)
        assert parquet.metadata.num_row_groups == len(eps), path
        assert parquet.schema_arrow.field("observation.state").type == pa.list_(pa.float32(), 4)
        assert parquet.schema_arrow.field("timestamp").type == pa.float32()
        for group, e in enumerate(eps):
            table = parquet.read_row_group(group)
            n = e["length"]
            assert table.num_rows == n
            assert set(table["episode_index"].to_pylist()) == {e["episode_index"]}
            frame_index = table["frame_index"].to_numpy()
            assert np.array_equal(frame_index, np.arange(n))
            ts = table["timestamp"].to_numpy()
            assert ts.dtype == np.float32
            assert np.array_equal(ts.view(np.uint32), (frame_index / fps).astype(np.float32).view(np.uint32))
            assert e["dataset_from_index"] == start and e["dataset_to_index"] == start + n
            assert np.array_equal(table["index"].to_numpy(), np.arange(start, start + n))
            assert {task_of[i] for i in table["task_index"].to_pylist()} == set(e["tasks"])
            start += n

    # Videos: every frame decodes, pts are continuous per file, episodes tile each file.
    decoded: dict[Path, list[np.ndarray]] = {}
    for key in _video_keys(info):
        vinfo = info["features"][key]["info"]
        for k, kind in VIDEO_INFO_KEYS.items():
            assert isinstance(vinfo[k], kind), (key, k, vinfo.get(k))
        assert vinfo["video.pix_fmt"] == "yuv420p" and vinfo["video.fps"] == fps
        assert vinfo["video.is_depth_map"] is False and vinfo["has_audio"] is False
        assert [vinfo["video.height"], vinfo["video.width"], vinfo["video.channels"]] == info["features"][
            key
        ]["shape"]
        by_video_file: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for e in episodes:
            by_video_file[(e[f"videos/{key}/chunk_index"], e[f"videos/{key}/file_index"])].append(e)
        for (chunk, file), eps in sorted(by_video_file.items()):
            path = root / info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
            frames, times, keyframes = _decode_all(path)
            total = sum(e["length"] for e in eps)
            assert len(frames) == total, (path, len(frames), total)
            assert frames[0].shape == (vinfo["video.height"], vinfo["video.width"], 3)
            np.testing.assert_allclose(times, np.arange(total) / fps, atol=1e-6)
            cursor = 0
            for e in eps:
                start_ts = e[f"videos/{key}/from_timestamp"]
                end_ts = e[f"videos/{key}/to_timestamp"]
                assert start_ts == pytest.approx(cursor / fps, abs=1e-9)
                assert end_ts == pytest.approx(start_ts + e["length"] / fps, abs=1e-9)
                assert keyframes[cursor], (path, e["episode_index"])  # each episode starts on a keyframe
                cursor += e["length"]
            decoded[path] = frames
    return {"info": info, "episodes": episodes, "decoded": decoded}


def _episode_table(root: Path, episode: dict[str, Any]) -> pa.Table:
    info = _info(root)
    path = root / info["data_path"].format(
        chunk_index=episode["data/chunk_index"], file_index=episode["data/file_index"]
    )
    table = pq.read_table(path)
    mask = np.asarray(table["episode_index"].to_numpy() == episode["episode_index"])
    return table.filter(pa.array(mask))


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- tests --------------------------------------------------------------------------------------------
def test_av1_dataset_is_valid_lerobot_v3(av1_root: Path) -> None:
    read = check_dataset(av1_root)
    info = read["info"]
    assert info["chunks_size"] == 1000 and info["data_files_size_in_mb"] == 100
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert _video_keys(info) == ["observation.images.front", "observation.images.wrist"]
    vinfo = info["features"]["observation.images.front"]["info"]
    assert (vinfo["video.codec"], vinfo["video.g"], vinfo["video.crf"]) == ("av1", 2, 30)
    assert info["features"]["observation.images.front"]["shape"] == [96, 128, 3]
    assert info["total_episodes"] == 4 and info["total_tasks"] == 3
    # All four episodes share one file per camera, so later episodes start past 0.
    froms = [e["videos/observation.images.front/from_timestamp"] for e in read["episodes"]]
    assert froms[0] == 0.0 and all(b > a for a, b in zip(froms, froms[1:], strict=False))
    assert len(read["decoded"]) == 2


def test_episode_stats_columns_shapes(av1_root: Path) -> None:
    row = _episodes(av1_root)[0]
    assert np.asarray(row["stats/observation.images.front/mean"]).shape == (3, 1, 1)
    assert row["stats/observation.images.front/count"][0] > 0
    assert len(row["stats/observation.state/mean"]) == 4
    assert row["stats/frame_index/max"] == [row["length"] - 1]
    mean = np.asarray(row["stats/observation.images.wrist/mean"])
    assert ((0 < mean) & (mean < 1)).all()


def test_gripper_state_follows_ground_truth(av1_root: Path) -> None:
    truth = _truth(av1_root)
    for episode, gt in zip(_episodes(av1_root), truth["episodes"], strict=True):
        assert gt["episode_index"] == episode["episode_index"] and gt["task"] == episode["tasks"][0]
        table = _episode_table(av1_root, episode)
        state = np.stack(table["observation.state"].to_numpy(zero_copy_only=False))
        action = np.stack(table["action"].to_numpy(zero_copy_only=False))
        assert state.dtype == np.float32 and action.dtype == np.float32
        grip = state[:, -1]
        g0, _ = gt["phases"]["grasp"]["start_frame"], gt["phases"]["grasp"]["end_frame"]
        r1 = gt["phases"]["release"]["end_frame"]
        grasp, release = gt["grasp_frame"], gt["release_frame"]
        assert (grip[grasp:release] == 1.0).all()  # closed between grasp and release
        assert (grip[:g0] == 0.0).all() and (grip[r1:] == 0.0).all()  # open before and after
        assert grip[grasp - 1] < 1.0 and grip[release] < 1.0  # the exact closing / opening frames
        assert np.array_equal(
            action[:, -1], ((np.arange(len(grip)) >= g0) & (np.arange(len(grip)) < release))
        )
        # The arm pauses while grasping and releasing, and moves in between.
        speed = np.linalg.norm(np.diff(state[:, :3], axis=0), axis=1) * truth["fps"]
        for phase in ("grasp", "release"):
            a, b = gt["phases"][phase]["start_frame"], gt["phases"][phase]["end_frame"]
            assert speed[a : b - 1].max() < 0.03, phase
        c0, c1 = gt["phases"]["carry"]["start_frame"], gt["phases"]["carry"]["end_frame"]
        assert speed[c0 : c1 - 1].max() > 0.2
        # The object is picked where the episode says and placed on the target.
        np.testing.assert_allclose(state[grasp, :2], gt["object"]["start_xy"], atol=2e-3)
        np.testing.assert_allclose(state[release, :2], gt["target"]["xy"], atol=2e-3)


def test_ground_truth_phases_are_frame_aligned(av1_root: Path) -> None:
    truth = _truth(av1_root)
    assert truth["generator"]["version"] == GENERATOR_VERSION
    fps = truth["fps"]
    for episode, gt in zip(_episodes(av1_root), truth["episodes"], strict=True):
        phases = gt["phases"]
        assert list(phases) == ["approach", "grasp", "carry", "release", "retreat"]
        cursor = 0
        for span in phases.values():
            assert span["start_frame"] == cursor and span["end_frame"] > span["start_frame"]
            assert span["start"] == span["start_frame"] / fps and span["end"] == span["end_frame"] / fps
            cursor = span["end_frame"]
        assert cursor == episode["length"] and gt["duration"] == episode["length"] / fps
        assert phases["grasp"]["start_frame"] < gt["grasp_frame"] < phases["grasp"]["end_frame"]
        assert phases["release"]["start_frame"] <= gt["release_frame"] < phases["release"]["end_frame"]
        assert gt["grasp_time"] == gt["grasp_frame"] / fps and gt["release_time"] == gt["release_frame"] / fps
        ts = _episode_table(av1_root, episode)["timestamp"].to_numpy()
        assert ts[gt["grasp_frame"]] == np.float32(gt["grasp_time"])


def test_rendered_colours_match_the_task(av1_root: Path) -> None:
    spec = spec_from_ground_truth(av1_root)
    truth = _truth(av1_root)
    assert len({gt["task"] for gt in truth["episodes"]}) == 3
    for gt in truth["episodes"]:
        obj, tgt = gt["object"], gt["target"]
        assert gt["task"] == (
            f"pick up the {obj['color']} {obj['shape']} and place it on the {tgt['color']} {tgt['kind']}"
        )
        img = clean_frame(spec, gt["episode_index"], "front", 0).astype(int)
        for name, rgb in render.COLORS.items():
            close = (np.abs(img - np.asarray(rgb)).max(axis=-1) < 20).sum()
            if name in (obj["color"], tgt["color"]):
                assert close >= 5, (gt["task"], name, close)
            else:
                assert close == 0, (gt["task"], name, close)


def test_decoded_frames_are_the_rendered_frames(av1_root: Path) -> None:
    """The frame at from_timestamp is the episode's first frame; the one before is the previous episode's last."""
    spec = spec_from_ground_truth(av1_root)
    info = _info(av1_root)
    episodes = _episodes(av1_root)
    for camera in spec.cameras:
        key = f"observation.images.{camera}"
        e = episodes[2]
        path = av1_root / info["video_path"].format(
            video_key=key,
            chunk_index=e[f"videos/{key}/chunk_index"],
            file_index=e[f"videos/{key}/file_index"],
        )
        start = e[f"videos/{key}/from_timestamp"]
        shown = _decode_at(path, start, info["fps"]).astype(int)
        own = np.abs(shown - clean_frame(spec, 2, camera, 0)).mean()
        prev = np.abs(shown - clean_frame(spec, 1, camera, episodes[1]["length"] - 1)).mean()
        assert own < 6 and prev > 2 * own, (camera, own, prev)
        last = e["length"] - 1
        shown = _decode_at(path, start + last / info["fps"], info["fps"]).astype(int)
        assert np.abs(shown - clean_frame(spec, 2, camera, last)).mean() < 6


def test_multi_file_roll_over(multi_root: Path) -> None:
    read = check_dataset(multi_root)
    info, episodes = read["info"], read["episodes"]
    assert info["video_files_size_in_mb"] == 0.03 and info["chunks_size"] == 2
    data_files = sorted(
        p.relative_to(multi_root).as_posix() for p in (multi_root / "data").rglob("*.parquet")
    )
    assert data_files == ["data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet"]
    assert [e["data/file_index"] for e in episodes] == [0, 0, 0, 0, 1, 1]
    all_locations = set()
    for key in _video_keys(info):
        locations = [(e[f"videos/{key}/chunk_index"], e[f"videos/{key}/file_index"]) for e in episodes]
        assert len(set(locations)) >= 2 and locations == sorted(locations), locations
        assert all(file < 2 for _, file in locations)  # chunks_size=2: file-002 never exists
        all_locations |= set(locations)
    assert (1, 0) in all_locations  # a third file went to chunk-001
    froms = [e[f"videos/{key}/from_timestamp"] for key in _video_keys(info) for e in episodes]
    assert any(t > 0 for t in froms)  # and some files hold several episodes


def test_multi_file_from_timestamp_by_decoding(multi_root: Path) -> None:
    """Decode each episode's first frame at from_timestamp (seek) and compare with a sequential decode."""
    read = check_dataset(multi_root)
    info = read["info"]
    fps = info["fps"]
    spec = spec_from_ground_truth(multi_root)
    for camera in spec.cameras:
        key = f"observation.images.{camera}"
        for e in read["episodes"]:
            path = multi_root / info["video_path"].format(
                video_key=key,
                chunk_index=e[f"videos/{key}/chunk_index"],
                file_index=e[f"videos/{key}/file_index"],
            )
            start = e[f"videos/{key}/from_timestamp"]
            seeked = _decode_at(path, start, fps)
            sequential = read["decoded"][path][int(round(start * fps))]
            assert np.array_equal(seeked, sequential), (key, e["episode_index"])
            error = np.abs(seeked.astype(int) - clean_frame(spec, e["episode_index"], camera, 0)).mean()
            assert error < 8, (key, e["episode_index"], error)


def test_image_camera_variant(tmp_path: Path) -> None:
    from PIL import Image

    root = make_sample_dataset(
        tmp_path / "ds", episodes=2, cameras=("front",), image_camera="top", codec="h264", **SMALL
    )
    read = check_dataset(root)
    info = read["info"]
    feat = info["features"]["observation.images.top"]
    assert feat == {"dtype": "image", "shape": [96, 128, 3], "names": ["height", "width", "channels"]}
    assert _video_keys(info) == ["observation.images.front"]
    episodes = read["episodes"]
    assert "videos/observation.images.top/from_timestamp" not in episodes[0]
    assert np.asarray(episodes[0]["stats/observation.images.top/mean"]).shape == (3, 1, 1)
    table = _episode_table(root, episodes[1])
    assert table.schema.field("observation.images.top").type == pa.struct(
        [("bytes", pa.binary()), ("path", pa.string())]
    )
    hf = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.images.top"] == {"_type": "Image"}
    cell = table["observation.images.top"][5].as_py()
    assert cell["path"] == "frame-000005.png"
    img = np.asarray(Image.open(io.BytesIO(cell["bytes"])))
    assert img.shape == (96, 128, 3) and img.dtype == np.uint8
    spec = spec_from_ground_truth(root)
    assert np.abs(img.astype(int) - clean_frame(spec, 1, "top", 5)).mean() < 3  # lossless PNG, only noise


def test_h264_variant(tmp_path: Path) -> None:
    root = make_sample_dataset(tmp_path / "ds", episodes=2, codec="h264", **SMALL)
    read = check_dataset(root)
    vinfo = read["info"]["features"]["observation.images.wrist"]["info"]
    assert vinfo["video.codec"] == "h264" and vinfo["video.g"] == 2
    for path in read["decoded"]:
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "h264"


@pytest.mark.parametrize("codec", ["av1", "h264"])
def test_deterministic_for_a_seed(tmp_path: Path, codec: str) -> None:
    kwargs: dict[str, Any] = {"episodes": 2, "codec": codec, "max_video_file_mb": 0.01, **SMALL}
    if codec == "av1":
        kwargs["image_camera"] = "top"
    first = _tree_digest(make_sample_dataset(tmp_path / "a", **kwargs))
    second = _tree_digest(make_sample_dataset(tmp_path / "b", **kwargs))
    # Byte-identical: parquet, json, png and mp4 (SVT-AV1 as configured, and x264 with mbtree off,
    # which otherwise made a few frames differ from run to run).
    assert first == second
    assert any(name.endswith(".mp4") for name in first)
    other = make_sample_dataset(tmp_path / "c", seed=1, **kwargs)
    assert _truth(other)["episodes"] != _truth(tmp_path / "a")["episodes"]
    assert _tree_digest(other)["ground_truth.json"] != first["ground_truth.json"]


def test_overwrite_and_invalid_arguments(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()  # an empty directory is fine
    make_sample_dataset(out, episodes=1, cameras=(), **SMALL)
    with pytest.raises(FileExistsError, match="overwrite"):
        make_sample_dataset(out, episodes=1, **SMALL)
    root = make_sample_dataset(out, episodes=1, cameras="front", overwrite=True, **SMALL)
    assert _video_keys(_info(root)) == ["observation.images.front"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    bad: list[tuple[dict[str, Any], str]] = [  # each refused for its own reason, named in the message
        ({"codec": "vp9"}, r"codec must be one of \['av1', 'h264'\], got 'vp9'"),
        ({"width": 97}, r"width must be an even integer >= 16 .*got 97"),
        ({"cameras": ("front", "front")}, r"camera names must be distinct, got \['front', 'front'\]"),
        ({"cameras": ("front",), "image_camera": "front"}, r"camera names must be distinct"),
        ({"cameras": ("a/b",)}, r"camera name 'a/b' must be non-empty letters"),
        ({"episode_seconds": 0.2}, r"episode_seconds=0\.2 at fps=30 is too short"),
        ({"episodes": 0}, r"episodes must be an integer >= 1, got 0"),
        ({"max_video_file_mb": 0}, r"max_video_file_mb must be positive, got 0"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=f"^{message}"):
            make_sample_dataset(tmp_path / "bad", **{**SMALL, **kwargs})
    assert not (tmp_path / "bad").exists()


def test_default_sample_dataset_is_cached_and_race_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LEROBOT_KEYFRAMES_CACHE", str(cache))
    kwargs = {"episodes": 1, "cameras": ["front"], "width": 64, "height": 48, "episode_seconds": 0.6}
    code = (
        "import sys, json; from lerobot_keyframes.testing.sample import default_sample_dataset as d; "
        f"print(d(**json.loads({json.dumps(json.dumps(kwargs))})))"
    )
    env = {**os.environ, "LEROBOT_KEYFRAMES_CACHE": str(cache)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(3)
    ]
    outputs = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outputs) == 1
    root = Path(outputs.pop())
    assert root.parent == cache / "samples"
    assert [p.name for p in (cache / "samples").iterdir()] == [root.name]  # no partial directories left
    check_dataset(root)
    inode = (root / "meta" / "info.json").stat().st_ino
    assert default_sample_dataset(**kwargs) == root  # reused, not rebuilt
    assert (root / "meta" / "info.json").stat().st_ino == inode
    assert default_sample_dataset(**{**kwargs, "seed": 3}) != root
    with pytest.raises(TypeError, match=r"does not take 'out'; use make_sample_dataset\(\)"):
        default_sample_dataset(out="x")
    with pytest.raises(TypeError, match="unexpected keyword argument 'episode'"):
        default_sample_dataset(episode=2)
