"""Shared fixtures: small sample datasets generated once per test session (offline, deterministic)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _hub_progress_bars_disabled() -> bool:
    from huggingface_hub.utils import are_progress_bars_disabled

    return are_progress_bars_disabled()


def _restore_hub_progress_bars(disabled: bool) -> None:
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (disable_progress_bars if disabled else enable_progress_bars)()


@pytest.fixture(autouse=True)
def _cli_settings_stay_in_their_test():
    """`cli.main` called in-process sets up logging (handlers on the stream of that moment, levels), environment
    defaults and huggingface_hub's progress bars for the whole process, as a program should; a test must not
    leave them to the next."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = [n for n in logging.root.manager.loggerDict if not n.startswith("_")]
    levels = {n: logging.getLogger(n).level for n in names}
    environ = dict(os.environ)
    hub_bars_off = _hub_progress_bars_disabled()
    yield
    _restore_hub_progress_bars(hub_bars_off)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)
    for name in set(logging.root.manager.loggerDict) - set(names):
        if not name.startswith("_"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    if os.environ != environ:
        os.environ.clear()
        os.environ.update(environ)


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


def pytest_configure(config: pytest.Config) -> None:
    # an assert (or any exception) inside a worker thread only warns by default: make it fail its test
    config.addinivalue_line("filterwarnings", "error::pytest.PytestUnhandledThreadExceptionWarning")
