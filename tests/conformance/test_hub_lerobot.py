"""lerobot 0.6.1's LeRobotDataset loads what push_dataset pushed to the (local) Hub, at the v3.0 tag."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/hub_fixtures.py

from hub_fixtures import forbid_remote_hosts, patch_hub_endpoint  # noqa: E402

from lerobot_keyframes.hub.push import push_dataset  # noqa: E402
from lerobot_keyframes.testing.local_hub import LocalHub  # noqa: E402
from lerobot_keyframes.testing.sample import make_sample_dataset  # noqa: E402


def test_lerobot_loads_the_pushed_dataset_at_the_codebase_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = make_sample_dataset(tmp_path / "sample", episodes=2, episode_seconds=1.0, width=64, height=48)
    info = json.loads((root / "meta/info.json").read_text())
    with LocalHub() as url:
        forbid_remote_hosts(monkeypatch)
        patch_hub_endpoint(monkeypatch, url, LocalHub.TOKEN, tmp_path / "hf-cache")
        push_dataset(root, "tester/pushed", private=False)

        # main moves without the tag: lerobot must still load the tagged (v3.0) commit
        (root / "meta/info.json").write_text(json.dumps({**info, "robot_type": "moved_on_main"}, indent=2))
        push_dataset(root, "tester/pushed", tag=False)
        ds = LeRobotDataset("tester/pushed", root=tmp_path / "load1")
        assert ds.meta.robot_type == info["robot_type"]
        assert len(ds) == info["total_frames"] and ds.num_episodes == info["total_episodes"]
        frame = ds[len(ds) - 1]
        assert {"observation.images.front", "observation.images.wrist", "task"} <= set(frame)

        # a normal push moves the tag with it
        push_dataset(root, "tester/pushed")
        assert LeRobotDataset("tester/pushed", root=tmp_path / "load2").meta.robot_type == "moved_on_main"
