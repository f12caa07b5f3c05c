"""Rest events and grounding on a dataset recorded by lerobot itself, with drifting orientation columns.

The issue this guards: on lerobot-written end-effector datasets the arm-rest events never fired, because
slowly drifting yaw/pitch/roll columns kept the speed over all non-gripper dimensions above the threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lerobot_keyframes.annotate.modules.motion import motion_events
from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.dataset.signals import read_episode_signals
from lerobot_keyframes.frames.policies.events import episode_grounding
from lerobot_keyframes.testing.sample import restore_scheduling

NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
RESTS = [(60, 100), (150, 190)]
N = 240


def _state(seed: int) -> np.ndarray:
    def min_jerk(s: np.ndarray) -> np.ndarray:
        return s**3 * (10 - 15 * s + 6 * s * s)

    t = np.arange(N) / 30.0
    keys = [(0, (0.3, 0.2, 0.4)), (60, (0.5, 0.1, 0.1)), (100, (0.5, 0.1, 0.1)), (150, (0.2, 0.4, 0.3)),
            (190, (0.2, 0.4, 0.3)), (N - 1, (0.3, 0.3, 0.4))]
    xyz = np.empty((N, 3))
    for (a, p), (b, q) in zip(keys, keys[1:]):
        xyz[a : b + 1] = np.asarray(p) + (np.asarray(q) - np.asarray(p)) * min_jerk((np.arange(a, b + 1) - a) / (b - a))[:, None]
    rng = np.random.default_rng(seed)
    orientation = np.stack([0.05 * t, -0.03 * t, 0.02 * np.sin(t / 3)], axis=1) + rng.normal(0, 1e-3, (N, 3))
    gripper = ((np.arange(N) >= 75) & (np.arange(N) < 165)).astype(float)
    return np.concatenate([xyz + rng.normal(0, 2e-4, xyz.shape), orientation, gripper[:, None]], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("grounding") / "ds"
    features = {
        "observation.state": {"dtype": "float32", "shape": (7,), "names": NAMES},
        "action": {"dtype": "float32", "shape": (7,), "names": NAMES},
        "observation.images.cam": {"dtype": "video", "shape": (32, 48, 3), "names": ["height", "width", "channels"]},
    }
    rec = LeRobotDataset.create("local/grounding", fps=30, features=features, root=root, use_videos=True)
    try:
        for seed in (0, 1):
            state = _state(seed)
            for i in range(N):
                rec.add_frame({"observation.state": state[i], "action": state[i],
                               "observation.images.cam": np.full((32, 48, 3), i % 255, np.uint8), "task": "pick"})
            rec.save_episode()
        rec.finalize()
    finally:
        restore_scheduling()
    return root


def test_rest_events_fire_on_a_lerobot_recording_with_drifting_orientation(recorded: Path) -> None:
    for row in load_episodes(recorded):
        ground = episode_grounding(row)
        assert ground.signal is not None and ground.signal.gripper_index == 6 and ground.signal.gripper_from == "names"
        assert ground.signal.arm_indices == (0, 1, 2)  # x, y, z: orientation columns are left out by name
        rests = [e.index for e in ground.events if e.kind in ("rest_start", "rest_end")]
        truth = [i for pair in RESTS for i in pair]
        assert len(rests) == 4 and all(abs(a - b) <= 4 for a, b in zip(rests, truth)), rests
        # the motion module's rows too (the old absolute-speed test found no rest here)
        signal = read_episode_signals(row, ["observation.state"])["observation.state"]
        still = [i for i, text in motion_events(signal, 30.0, 6, names=NAMES) if text == "hold the arm still"]
        assert len(still) == 2 and abs(still[0] - 60) <= 4 and abs(still[1] - 150) <= 4
