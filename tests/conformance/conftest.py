"""Conformance with lerobot 0.6.1: runs in its own Python 3.12 venv (scripts/lerobot_tier.sh).

In the main venv lerobot is not installed and every test here is skipped. Inside the tier script
(`LEROBOT_KEYFRAMES_LEROBOT_TIER=1`) a missing or broken lerobot is an error, never a skip.
"""

from __future__ import annotations

import importlib
import os

import pytest

IN_TIER = os.environ.get("LEROBOT_KEYFRAMES_LEROBOT_TIER") == "1"


def _lerobot_error() -> str | None:
    try:
        importlib.import_module("lerobot.datasets.lerobot_dataset")
        importlib.import_module("lerobot.datasets.language_render")
    except Exception as exc:  # ImportError, or a broken install failing at import time
        return f"{type(exc).__name__}: {exc}"
    return None


LEROBOT_ERROR = _lerobot_error()
if LEROBOT_ERROR is not None and IN_TIER:
    raise RuntimeError(
        f"lerobot does not import in the conformance venv ({LEROBOT_ERROR}); "
        "delete the venv under ~/.cache/lerobot_keyframes/venvs/lerobot-* and re-run scripts/lerobot_tier.sh"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if not str(item.fspath).startswith(here):
            continue
        item.add_marker(pytest.mark.lerobot)
        if LEROBOT_ERROR is not None:
            item.add_marker(pytest.mark.skip(reason=f"lerobot not importable ({LEROBOT_ERROR}); "
                                                    "run bash scripts/lerobot_tier.sh"))
