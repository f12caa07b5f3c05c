"""The provider on the package's sample dataset (lerobot's layout: several episodes per mp4, files rolled
over by size, an image camera): every frame of every episode and camera, bit for bit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from frames_helpers import reference_frames, restore_scheduling
from PIL import Image

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.frames import make_frame_provider
from lerobot_keyframes.testing.sample import make_sample_dataset

TOP = "observation.images.top"


@pytest.fixture(scope="module", params=["av1", "h264"])
def sample(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_sample_dataset(
        tmp_path_factory.mktemp("sample") / request.param, episodes=4, cameras=("front", "wrist"),
        codec=request.param, image_camera="top", width=96, height=64, episode_seconds=2.0,
        max_video_file_mb=0.04,
    )
    restore_scheduling()  # the AV1 encoder leaves the thread SCHED_FIFO (see frames_helpers)
    return root


def _expected(root: Path, row: dict, camera: dict, refs: dict[str, list[np.ndarray]]) -> list[np.ndarray]:
    if camera["storage"] == "image":
        table = pq.read_table(root / camera["path"], columns=["index", camera["key"]])
        index = table["index"].to_numpy()
        keep = np.nonzero((index >= row["dataset_from_index"]) & (index < row["dataset_to_index"]))[0]
        cells = table[camera["key"]].take(keep).to_pylist()
        return [np.asarray(Image.open(io.BytesIO(c["bytes"])).convert("RGB")) for c in cells]
    path = str(root / camera["path"])
    if path not in refs:
        refs[path] = reference_frames(path)
    first = round(camera["from_timestamp"] * row["fps"])
    return refs[path][first : first + row["length"]]


@pytest.mark.parametrize("backend", ["torchcodec", "pyav", "ffmpeg"])
def test_every_frame_of_the_sample_dataset(sample: Path, backend: str) -> None:
    table = load_episodes(sample)
    rows = table.to_list()
    files = {c["path"] for r in rows for c in r["cameras"] if c["storage"] == "video"}
    assert len(files) >= 3 and any(c["from_timestamp"] > 0 for r in rows for c in r["cameras"])
    provider = make_frame_provider(table, video_backend=backend, cache_mb=0)
    assert provider.camera_keys == ["observation.images.front", "observation.images.wrist", TOP]
    refs: dict[str, list[np.ndarray]] = {}
    requests = [(row, row["timestamps"], cam["key"]) for row in rows for cam in row["cameras"]]
    results = provider.frames_at_many(requests)  # frames of one mp4 across episodes: one batch per file
    for (row, times, key), frames in zip(requests, results):
        camera = next(c for c in row["cameras"] if c["key"] == key)
        expected = _expected(sample, row, camera, refs)
        assert len(frames) == len(times) == len(expected) == row["length"]
        assert frames.indices == tuple(range(row["length"]))
        assert frames.video_backend == ("image" if camera["storage"] == "image" else backend)
        data = frames.data.permute(0, 2, 3, 1).numpy()
        bad = [i for i in range(row["length"]) if not np.array_equal(data[i], expected[i])]
        assert not bad, f"episode {row['episode_index']} {key}: frames {bad[:5]} differ"
        # the returned times are the real ones, and the parquet times are within a hair of them
        assert np.allclose(frames.timestamps, np.asarray(times, dtype=np.float64), atol=1e-5)


def test_video_for_episode_on_sample_by_index(sample: Path) -> None:
    provider = make_frame_provider(sample)
    table = load_episodes(sample)
    for row in table:
        frames = provider.video_for_episode(row["episode_index"], 8, camera="observation.images.wrist")
        assert frames.indices[0] == 0 and frames.indices[-1] == row["length"] - 1 and len(frames) == 8
        assert list(frames.requested) == [row["timestamps"][i] for i in frames.indices]
