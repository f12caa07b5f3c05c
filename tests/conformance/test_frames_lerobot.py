"""Our FrameProvider on a dataset recorded by lerobot 0.6.1 itself: every frame of every episode equals
lerobot's own decode bit for bit, for every backend, although the episodes share one mp4 (non-zero
`from_timestamp`) and the times are lerobot's float32 parquet timestamps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.frames import make_frame_provider
from lerobot_keyframes.testing.sample import restore_scheduling

LENGTHS = (37, 41, 29)
CAM = "observation.images.cam"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("recorded") / "ds"
    features = {
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
        CAM: {"dtype": "video", "shape": (48, 64, 3), "names": ["height", "width", "channels"]},
    }
    rec = LeRobotDataset.create("local/recorded", fps=30, features=features, root=root, use_videos=True)
    rng = np.random.default_rng(7)
    try:
        for length in LENGTHS:
            for _ in range(length):
                rec.add_frame({"observation.state": rng.random(2, dtype=np.float32),
                               CAM: (rng.random((48, 64, 3)) * 255).astype(np.uint8), "task": "pick"})
            rec.save_episode()
        rec.finalize()
    finally:
        restore_scheduling()  # lerobot encodes AV1 with SVT-AV1, which goes SCHED_FIFO as root
    return root


def lerobot_frames(root: Path) -> list[np.ndarray]:
    """Every frame as lerobot decodes it for training (float in [0, 1] -> the uint8 it came from)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/recorded", root=root)
    out = []
    for i in range(len(ds)):
        value = ds[i][CAM].numpy()
        as_uint8 = np.round(value * 255).astype(np.uint8)
        assert np.array_equal(as_uint8.astype(np.float32) / 255, value)  # exactly a uint8 frame
        out.append(as_uint8.transpose(1, 2, 0))  # C x H x W -> H x W x C, like Frames.to_numpy
    return out


@pytest.mark.parametrize("backend", ["torchcodec", "pyav", "ffmpeg"])
def test_every_frame_equals_lerobots_own_decode(recorded: Path, backend: str) -> None:
    table = load_episodes(recorded)
    assert table["length"] == list(LENGTHS)
    starts = [c["from_timestamp"] for c in (row["cameras"][0] for row in table.to_list())]
    assert starts[0] == 0 and starts[1] > 0 and starts[2] > starts[1]  # one shared file
    expected = lerobot_frames(recorded)
    provider = make_frame_provider(table, video_backend=backend)
    got = []
    for row in table.to_list():
        frames = provider.frames_at(row["episode_index"], [float(t) for t in row["timestamps"]], CAM)
        assert frames.indices == tuple(range(row["length"]))
        got.extend(frames.to_numpy())
    assert len(got) == len(expected) == sum(LENGTHS)
    wrong = [i for i, (a, b) in enumerate(zip(got, expected)) if not np.array_equal(a, b)]
    assert wrong == [], f"{len(wrong)} frames differ from lerobot's decode, first at dataset index {wrong[:5]}"


def test_the_recording_exercises_the_float32_rounding_hazard(recorded: Path) -> None:
    """The dataset is a real test of the nearest-frame rule: torchcodec's "frame played at
    from_timestamp + t" lookup gets some of these frames wrong, the provider none (test above)."""
    from torchcodec.decoders import VideoDecoder

    table = load_episodes(recorded)
    expected = lerobot_frames(recorded)
    row0 = table.to_list()[0]
    decoder = VideoDecoder(str(recorded / row0["cameras"][0]["path"]))
    got = []
    for row in table.to_list():
        start = row["cameras"][0]["from_timestamp"]
        batch = decoder.get_frames_played_at([start + float(t) for t in row["timestamps"]])
        got.extend(batch.data.permute(0, 2, 3, 1).numpy())
    wrong = sum(not np.array_equal(a, b) for a, b in zip(got, expected))
    assert wrong > 0, "every frame-played-at lookup landed: the recording does not exercise the rounding hazard"
