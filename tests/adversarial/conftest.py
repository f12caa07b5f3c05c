"""Fixtures of the adversarial suite (helpers in adversarial_helpers.py): tiny datasets, the CLI in-process."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 episodes x 1 camera x 1 s, 64x48 H.264, both episodes in one mp4. Read-only: use `tiny`."""
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("adv") / "ds", episodes=2, cameras=("front",), width=64,
                               height=48, episode_seconds=1.0, codec="h264")


@pytest.fixture
def tiny(tiny_root: Path, tmp_path: Path) -> Path:
    """A private, writable copy of `tiny_root`."""
    dst = tmp_path / "src"
    shutil.copytree(tiny_root, dst, symlinks=True)
    return dst


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `lerobot-keyframes ARGS` in-process: (exit code, stdout, stderr)."""
    from lerobot_keyframes.cli import main

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse errors
            rc = int(exc.code or 0)
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture
def model_server():
    """A real OpenAI-compatible HTTP server on 127.0.0.1 that counts requests (`.stats.requests`)."""
    from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server
