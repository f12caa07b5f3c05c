"""lerobot_keyframes: grounded language for LeRobot v3 datasets.

Exact keyframes from the videos, Qwen-VL annotation with structured output, and lerobot's two
language columns written back. Public names are imported lazily so `import lerobot_keyframes` is cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_episodes": "lerobot_keyframes.dataset",
    "DatasetLayout": "lerobot_keyframes.dataset",
    "DatasetFormatError": "lerobot_keyframes.dataset",
    "make_frame_provider": "lerobot_keyframes.frames",
    "KeyframeTransform": "lerobot_keyframes.transform",
    "extract_keyframes": "lerobot_keyframes.transform",
    "AnnotateConfig": "lerobot_keyframes.annotate",
    "run_annotation": "lerobot_keyframes.annotate",
    "VlmConfig": "lerobot_keyframes.vlm",
    "make_backend": "lerobot_keyframes.vlm",
    "validate_dataset": "lerobot_keyframes.language",
    "write_language": "lerobot_keyframes.language",
    "push_dataset": "lerobot_keyframes.hub.push",
    "build_review": "lerobot_keyframes.review",
    "make_sample_dataset": "lerobot_keyframes.testing.sample",
    "default_sample_dataset": "lerobot_keyframes.testing.sample",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lerobot_keyframes' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
