"""Test helpers users can use too: the sample dataset generator, tiny offline Qwen-VL models, a scripted
backend, a local Hub server and a fake OpenAI server. Imported lazily (each pulls in heavy dependencies)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "make_sample_dataset": "sample",
    "default_sample_dataset": "sample",
    "build_tiny_qwen": "tiny_qwen",
    "tiny_qwen_cached": "tiny_qwen",
    "ScriptedBackend": "scripted",
    "LocalHub": "local_hub",
    "FakeOpenAIServer": "fake_openai",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lerobot_keyframes.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_EXPORTS)
