"""Test helpers users can use too: the sample dataset generator, tiny offline Qwen-VL models, a scripted
backend, a local Hub server and a fake OpenAI server. Imported lazily (each pulls in heavy dependencies)."""

# ruff: noqa: F401 - the TYPE_CHECKING imports are re-exports for IDEs and type checkers
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {  # module -> the public names it defines
    ".sample": "default_sample_dataset make_sample_dataset",
    ".tiny_qwen": "build_tiny_qwen tiny_qwen_cached",
    ".scripted": "ScriptedBackend",
    ".local_hub": "LocalHub",
    ".fake_openai": "FakeOpenAIServer",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .fake_openai import FakeOpenAIServer
    from .local_hub import LocalHub
    from .sample import default_sample_dataset, make_sample_dataset
    from .scripted import ScriptedBackend
    from .tiny_qwen import build_tiny_qwen, tiny_qwen_cached
