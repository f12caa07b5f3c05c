"""The LeRobot v3 reader: episode table contents, exact timestamps, and every documented error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lerobot_keyframes.dataset import (
    DatasetFormatError,
    DatasetLayout,
    UnsafePathError,
    UnsupportedVersionError,
    load_episodes,
)

EP_META = "meta/episodes/chunk-000/file-000.parquet"


def _info(root: Path) -> dict:
    return json.loads((root / "meta/info.json").read_text())


def _write_info(root: Path, info: dict) -> None:
    (root / "meta/info.json").write_text(json.dumps(info, indent=2))


def _rewrite_episodes(root: Path, fn) -> None:
    path = root / EP_META
    pq.write_table(fn(pq.read_table(path)), path)


def test_episode_table_matches_parquet_bit_for_bit(sample_root: Path) -> None:
    episodes = load_episodes(sample_root)
    info = _info(sample_root)
    assert episodes.num_rows == info["total_episodes"] == 2
    data = pq.read_table(sample_root / "data/chunk-000/file-000.parquet")
    for row in episodes:
        e = row["episode_index"]
        mask = np.asarray(data["episode_index"]) == e
        expected = np.asarray(data["timestamp"])[mask]
        got = np.asarray(row["timestamps"], dtype=np.float32)
        assert got.dtype == expected.dtype == np.float32
        assert got.tobytes() == expected.tobytes()  # bit-exact, not approximately equal
        assert row["length"] == mask.sum()
        assert row["dataset_to_index"] - row["dataset_from_index"] == row["length"]
        assert row["task"] and row["task"] == row["tasks"][0]
        assert row["camera_keys"] == ["observation.images.front", "observation.images.wrist"]
        for cam in row["cameras"]:
            assert cam["storage"] == "video"
            assert (Path(row["root"]) / cam["path"]).is_file()
            assert cam["codec"] == "av1"
            assert (cam["width"], cam["height"]) == (320, 240)
            assert cam["to_timestamp"] == pytest.approx(cam["from_timestamp"] + row["length"] / row["fps"])
    # several episodes share one mp4: the second starts where the first ends
    first, second = episodes[0]["cameras"][0], episodes[1]["cameras"][0]
    assert first["path"] == second["path"]
    assert second["from_timestamp"] == pytest.approx(first["to_timestamp"])


def test_episode_table_uses_declared_features(sample_root: Path) -> None:
    from lerobot_keyframes.dataset import episode_features

    episodes = load_episodes(sample_root)
    assert episodes.features == episode_features()
    assert episodes.features["timestamps"].feature.dtype == "float32"


def test_episode_and_camera_selection(sample_root: Path) -> None:
    episodes = load_episodes(sample_root, episodes=[1], cameras=["observation.images.wrist"])
    assert episodes["episode_index"] == [1]
    assert [c["key"] for c in episodes[0]["cameras"]] == ["observation.images.wrist"]
    with pytest.raises(DatasetFormatError, match="episode 7 does not exist"):
        load_episodes(sample_root, episodes=[7])
    with pytest.raises(DatasetFormatError, match="unknown camera"):
        load_episodes(sample_root, cameras=["observation.images.nope"])


def test_multifile_and_image_camera(multifile_root: Path) -> None:
    episodes = load_episodes(multifile_root)
    data_files = {r["data_file"] for r in episodes}
    assert len(data_files) == episodes.num_rows == 3
    video_files = {c["path"] for r in episodes for c in r["cameras"] if c["storage"] == "video"}
    assert len(video_files) > 2  # roll-over happened
    image_cams = [c for r in episodes for c in r["cameras"] if c["storage"] == "image"]
    assert image_cams and all(c["key"] == "observation.images.top" for c in image_cams)
    for row in episodes:
        data = pq.read_table(multifile_root / row["data_file"])
        ts = np.asarray(data["timestamp"])[np.asarray(data["episode_index"]) == row["episode_index"]]
        assert np.asarray(row["timestamps"], dtype=np.float32).tobytes() == ts.tobytes()


def test_missing_info(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="meta/info.json: missing"):
        load_episodes(tmp_path)


def test_malformed_info(sample_copy: Path) -> None:
    (sample_copy / "meta/info.json").write_text("{not json")
    with pytest.raises(DatasetFormatError, match="malformed JSON"):
        load_episodes(sample_copy)


def test_v2_dataset_points_to_converter(sample_copy: Path) -> None:
    info = _info(sample_copy)
    info["codebase_version"] = "v2.1"
    _write_info(sample_copy, info)
    with pytest.raises(UnsupportedVersionError, match="v2.1.*convert_dataset_v21_to_v30"):
        load_episodes(sample_copy)


def test_missing_camera_columns(sample_copy: Path) -> None:
    def drop(table: pa.Table) -> pa.Table:
        return table.drop_columns(["videos/observation.images.wrist/from_timestamp"])

    _rewrite_episodes(sample_copy, drop)
    with pytest.raises(DatasetFormatError, match=r"observation.images.wrist/from_timestamp.*'observation.images.wrist'"):
        load_episodes(sample_copy)


def test_missing_data_file(sample_copy: Path) -> None:
    (sample_copy / "data/chunk-000/file-000.parquet").unlink()
    with pytest.raises(DatasetFormatError, match=r"data/chunk-000/file-000.parquet: data file is missing"):
        load_episodes(sample_copy)


def test_non_contiguous_episode_indices(sample_copy: Path) -> None:
    def renumber(table: pa.Table) -> pa.Table:
        idx = table.column_names.index("episode_index")
        return table.set_column(idx, "episode_index", pa.array([0, 5], pa.int64()))

    _rewrite_episodes(sample_copy, renumber)
    with pytest.raises(DatasetFormatError, match="not contiguous.*episode 5"):
        load_episodes(sample_copy)


def test_length_disagrees_with_frames(sample_copy: Path) -> None:
    def lengthen(table: pa.Table) -> pa.Table:
        idx = table.column_names.index("length")
        lengths = table["length"].to_pylist()
        lengths[1] += 3
        return table.set_column(idx, "length", pa.array(lengths, pa.int64()))

    _rewrite_episodes(sample_copy, lengthen)
    with pytest.raises(DatasetFormatError, match=r"file-000.parquet: episode 1 has \d+ frames but meta/episodes says length="):
        load_episodes(sample_copy)


@pytest.mark.parametrize(
    ("key", "template", "error"),
    [
        ("data_path", "../outside/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "outside the dataset root"),
        ("data_path", "/etc/{chunk_index}.parquet", "is absolute"),
        ("data_path", "data/{chunk_index.__class__}/x.parquet", "uses field"),
        ("video_path", "videos/../../{video_key}/{chunk_index}-{file_index}.mp4", "outside the dataset root"),
    ],
)
def test_path_templates_stay_inside_root(sample_copy: Path, key: str, template: str, error: str) -> None:
    info = _info(sample_copy)
    info[key] = template
    _write_info(sample_copy, info)
    with pytest.raises(UnsafePathError, match=error):
        load_episodes(sample_copy)


def test_camera_key_cannot_escape_root(sample_copy: Path) -> None:
    layout = DatasetLayout.open(sample_copy)
    with pytest.raises(UnsafePathError):
        layout.video_path("../../../../tmp/evil", 0, 0)


def test_hub_style_symlinked_root_is_read(sample_root: Path, tmp_path: Path) -> None:
    """Hub snapshots are trees of symlinks into a blob store; the reader follows them without complaint."""
    blobs, snap = tmp_path / "blobs", tmp_path / "snapshot"
    shutil.copytree(sample_root, blobs)
    for src in blobs.rglob("*"):
        if src.is_file():
            dst = snap / src.relative_to(blobs)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src)
    episodes = load_episodes(snap)
    assert episodes.num_rows == 2
    assert all((snap / c["path"]).is_symlink() for c in episodes[0]["cameras"])
