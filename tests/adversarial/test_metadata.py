"""Metadata that contradicts itself or the video: refused with file, episode, camera and field named.

The tiny dataset has 2 episodes of 31 and 32 frames at 30 fps in one mp4 per camera, episode 0 doing
task 0 and episode 1 task 1.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adversarial_helpers import one_error_line, tree_hash

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.dataset.errors import DatasetFormatError
from lerobot_keyframes.frames import make_frame_provider
from lerobot_keyframes.frames.errors import FrameDecodeError

EPISODES = "meta/episodes/chunk-000/file-000.parquet"
CAM = "observation.images.front"
FROM, TO = f"videos/{CAM}/from_timestamp", f"videos/{CAM}/to_timestamp"


def _edit_episodes(root: Path, **columns: list) -> None:
    path = root / EPISODES
    table = pq.read_table(path)
    for name, values in columns.items():
        if values is None:
            table = table.drop_columns([name])
        else:
            table = table.set_column(table.column_names.index(name), name, pa.array(values, table[name].type))
    pq.write_table(table, path)


def _column(root: Path, name: str) -> list:
    return pq.read_table(root / EPISODES)[name].to_pylist()


def test_without_a_tasks_column_each_episode_gets_its_own_task_from_the_data(tiny: Path) -> None:
    expected = [t[0] for t in _column(tiny, "tasks")]
    assert expected[0] != expected[1]
    _edit_episodes(tiny, tasks=None)
    rows = load_episodes(tiny)
    assert [r["task"] for r in rows] == expected  # not task 0 for every episode


def test_a_task_index_missing_from_meta_tasks_is_refused(tiny: Path) -> None:
    _edit_episodes(tiny, tasks=None)
    data = tiny / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    idx = table.column_names.index("task_index")
    table = table.set_column(idx, "task_index", pa.array([7] * table.num_rows, table["task_index"].type))
    pq.write_table(table, data)
    with pytest.raises(DatasetFormatError) as info:
        load_episodes(tiny)
    msg = str(info.value)
    assert str(data) in msg and "episode 0" in msg and "task_index" in msg and "[7]" in msg


def test_a_from_timestamp_overlapping_another_episode_is_refused(tiny: Path, tmp_path: Path, cli) -> None:
    lo, hi = _column(tiny, FROM), _column(tiny, TO)
    _edit_episodes(tiny, **{FROM: [lo[0], lo[1] - 0.5], TO: [hi[0], hi[1] - 0.5]})  # span intact, shifted back
    before = tree_hash(tiny)
    rc, _, err = cli("keyframes", tiny, "--out", tmp_path / "kf", "--policy", "uniform:2", "--use_cache", "false")
    assert rc == 2
    line = one_error_line(err)
    assert "episode 1" in line and CAM in line and "overlaps episode 0" in line and "file-000.mp4" in line
    assert "from_timestamp" in line
    assert not (tmp_path / "kf").exists() and tree_hash(tiny) == before


def test_a_span_that_disagrees_with_the_length_is_refused(tiny: Path) -> None:
    hi = _column(tiny, TO)
    _edit_episodes(tiny, **{TO: [hi[0] - 0.3, hi[1]]})  # 9 frames short of length=31
    with pytest.raises(DatasetFormatError) as info:
        load_episodes(tiny)
    msg = str(info.value)
    assert "meta/episodes" in msg and "episode 0" in msg and CAM in msg and "length=31" in msg and "to_timestamp" in msg


def test_a_length_that_disagrees_with_the_data_rows_is_refused(tiny: Path) -> None:
    length, hi = _column(tiny, "length"), _column(tiny, TO)
    _edit_episodes(tiny, length=[length[0], length[1] + 5], **{TO: [hi[0], hi[1] + 5 / 30]})
    with pytest.raises(DatasetFormatError, match=r"file-000.parquet: episode 1 has 32 frames but meta/episodes says length=37"):
        load_episodes(tiny)


def test_an_episode_past_the_end_of_its_stream_is_refused_when_the_video_is_opened(tiny: Path) -> None:
    lo, hi = _column(tiny, FROM), _column(tiny, TO)
    _edit_episodes(tiny, **{FROM: [lo[0], lo[1] + 0.5], TO: [hi[0], hi[1] + 0.5]})  # the last episode, moved late
    provider = make_frame_provider(tiny, cache_mb=0)
    with pytest.raises(FrameDecodeError) as info:
        provider.frames_at(1, [0.0])  # its start frame exists: without the check this silently decodes frame 15
    msg = str(info.value)
    assert "file-000.mp4" in msg and "episode 1" in msg and CAM in msg and "0.000000" in msg
    assert "stream ends" in msg


def test_a_timestamp_that_is_not_a_number_is_refused_naming_file_episode_and_frame(tiny: Path, tmp_path: Path, cli,
                                                                                  model_server) -> None:
    from adversarial_helpers import model_flags

    shard = next((tiny / "data").rglob("*.parquet"))
    table = pq.read_table(shard)
    ts = table["timestamp"].to_numpy().copy()
    ts[len(ts) - 3] = float("nan")  # a frame of episode 1 (the last episode of the shard)
    column = table.schema.get_field_index("timestamp")
    pq.write_table(table.set_column(column, "timestamp", pa.array(ts, type=table.schema.field("timestamp").type)), shard)
    before = tree_hash(tiny)
    rc, _, err = cli("annotate", "--root", tiny, "--out", tmp_path / "out", *model_flags(model_server.api_base))
    assert rc == 2
    line = one_error_line(err)  # was "cannot convert float NaN to integer", mid-run, naming nothing
    assert str(shard) in line and "episode 1 frame" in line and "not a finite number" in line
    assert model_server.stats.requests == 0 and not (tmp_path / "out").exists() and tree_hash(tiny) == before
