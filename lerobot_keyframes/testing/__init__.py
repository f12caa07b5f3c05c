"""Test helpers users can use too: the sample dataset generator, tiny offline Qwen-VL models, a scripted
backend, a local Hub server and a fake OpenAI server. Imported lazily (each pulls in heavy dependencies)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {
    "make_sample_dataset": ".sample",
    "default_sample_dataset": ".sample",
    "build_tiny_qwen": ".tiny_qwen",
    "tiny_qwen_cached": ".tiny_qwen",
    "ScriptedBackend": ".scripted",
    "LocalHub": ".local_hub",
    "FakeOpenAIServer": ".fake_openai",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .fake_openai import FakeOpenAIServer  # noqa: F401
    from .local_hub import LocalHub  # noqa: F401
    from .sample import default_sample_dataset, make_sample_dataset  # noqa: F401
    from .scripted import ScriptedBackend  # noqa: F401
    from .tiny_qwen import build_tiny_qwen, tiny_qwen_cached  # noqa: F401
