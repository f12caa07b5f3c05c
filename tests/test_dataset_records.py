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
