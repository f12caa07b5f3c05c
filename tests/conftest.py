"""Shared fixtures: small sample datasets generated once per test session (offline, deterministic)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 episodes x 2 cameras x 2 s, AV1 GOP 2 like lerobot. Read-only: copy it before changing anything."""
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("sample") / "ds", episodes=2, episode_seconds=2.0)


@pytest.fixture(scope="session")
def multifile_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 episodes, H.264, a new mp4 and a new data file for (almost) every episode, plus an image camera."""
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(
        tmp_path_factory.mktemp("multi") / "ds",
        episodes=3,
        episode_seconds=1.5,
        codec="h264",
        max_video_file_mb=0.01,
        episodes_per_data_file=1,
        image_camera="top",
    )


@pytest.fixture
def sample_copy(sample_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of `sample_root`."""
    dst = tmp_path / "ds"
    shutil.copytree(sample_root, dst)
    return dst
