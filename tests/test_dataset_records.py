"""`Episode` / `CameraRef`: the typed episode-table records round-trip the rows `load_episodes` builds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lerobot_keyframes.dataset import CameraRef, Episode, build_episode_rows
from lerobot_keyframes.dataset.layout import DatasetLayout
from lerobot_keyframes.testing.sample import make_sample_dataset


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    root = make_sample_dataset(tmp_path_factory.mktemp("ds") / "ds", episodes=2, episode_seconds=1.0, width=64, height=48)
    return build_episode_rows(DatasetLayout.open(root))


def test_round_trip_of_every_field(rows: list[dict]) -> None:
    for row in rows:
        ep = Episode.from_row(row)
        back = ep.to_row()
        assert back.keys() == row.keys()
        for key, value in row.items():
            if key == "timestamps":
                assert np.array_equal(np.asarray(back[key], np.float32), np.asarray(value, np.float32))
            else:
                assert back[key] == value, key
        assert Episode.from_row(ep) is ep


def test_timestamps_are_one_read_only_float32_array(rows: list[dict]) -> None:
    ep = Episode.from_row(rows[0])
    assert ep.timestamps.dtype == np.float32 and ep.timestamps is ep.timestamps
    with pytest.raises(ValueError, match="read-only"):
        ep.timestamps[0] = 1.0
    assert len(ep.timestamps) == ep.length and ep.duration == pytest.approx(ep.length / ep.fps)


def test_cameras_by_key_short_name_and_narrowing(rows: list[dict]) -> None:
    ep = Episode.from_row(rows[0])
    first = ep.cameras[0]
    assert ep.camera(first.key) is first and ep.camera(first.short_name) is first
    with pytest.raises(KeyError, match="has no camera 'nope'"):
        ep.camera("nope")
    narrowed = ep.with_cameras([first.key])
    assert narrowed.camera_keys == (first.key,) and ep.camera_keys == tuple(r["key"] for r in rows[0]["cameras"])
    assert narrowed.data_path == Path(rows[0]["root"]) / rows[0]["data_file"]


def test_bad_rows_are_refused_with_the_episode_named() -> None:
    with pytest.raises(ValueError, match="storage must be 'video' or 'image'"):
        CameraRef.from_row({"key": "cam", "storage": "tape"})
    with pytest.raises(ValueError, match="episode 3: 'timestamps' must be 1-D"):
        Episode(episode_index=3, length=2, fps=10.0, timestamps=np.zeros((2, 2)))
    ep = Episode(episode_index=4, length=3, fps=10.0, timestamps=np.asarray([0.0, 0.2, 0.1]))
    with pytest.raises(ValueError, match="episode 4: frame timestamps are not strictly increasing"):
        ep.check_timestamps()
    assert dataclasses.replace(ep, task="x").task == "x"


def test_data_parquet_columns_and_timestamps_read_by_the_record(rows: list[dict]) -> None:
    import pyarrow.parquet as pq

    from lerobot_keyframes.dataset import DatasetFormatError

    row = rows[1]
    ep = Episode.from_row(row)
    table = pq.read_table(ep.data_path).to_pydict()
    mine = [i for i, e in enumerate(table["episode_index"]) if e == ep.episode_index]
    read = ep.read_columns(["frame_index", "timestamp"])
    assert read.column_names == ["frame_index", "timestamp"]
    assert read["frame_index"].to_pylist() == list(range(ep.length))
    assert read["timestamp"].to_pylist() == [table["timestamp"][i] for i in mine]
    bare = Episode.from_row({**row, "timestamps": None})  # a row that travelled without its timestamps
    assert len(bare.timestamps) == 0 and ep.with_timestamps() is ep
    completed = bare.with_timestamps()
    assert completed.timestamps.dtype == np.float32 and np.array_equal(completed.timestamps, ep.timestamps)
    wrong = dataclasses.replace(bare, length=ep.length + 1)
    with pytest.raises(DatasetFormatError, match=f"holds {ep.length} frames of episode {ep.episode_index}"):
        wrong.with_timestamps()
    no_file = Episode(episode_index=7, length=3, fps=10.0, timestamps=np.zeros(0))
    assert no_file.with_timestamps().timestamps.tolist() == pytest.approx([0.0, 0.1, 0.2])
    with pytest.raises(DatasetFormatError, match="episode 7: the record has no root/data_file"):
        no_file.read_columns(["timestamp"])


def test_episode_records_from_a_root_a_table_and_rows(rows: list[dict]) -> None:
    from lerobot_keyframes.dataset import episode_records, load_episodes

    root = rows[0]["root"]
    from_root, origin = episode_records(root, episodes=[1])
    assert origin == root and [e.episode_index for e in from_root] == [1]
    from_table, origin = episode_records(load_episodes(root))
    assert origin is None and [e.episode_index for e in from_table] == [0, 1]
    assert np.array_equal(from_table[1].timestamps, from_root[0].timestamps)
    ep = Episode.from_row(rows[0])
    assert episode_records(ep)[0][0] is ep and episode_records(rows[0])[0][0].episode_index == 0
    with pytest.raises(ValueError, match="not an episode table"):
        episode_records(load_episodes(root).remove_columns(["cameras"]))
