"""Vision-language model backends with enforced structured output.

    from lerobot_keyframes.vlm import VlmConfig, make_backend
    backend = make_backend(VlmConfig(backend="transformers", model_id="Qwen/Qwen2.5-VL-3B-Instruct"))
    results = backend.generate(conversations, schema)   # one VlmResult per conversation, in order

Backends: ``transformers`` (in-process, xgrammar logits processor), ``vllm`` (in-process ``vllm.LLM``,
structured outputs), ``openai`` (any OpenAI-compatible server, optional ``auto_serve`` of a local vLLM).
Importing this package is cheap: torch, transformers, vllm and openai load when a backend is built.
"""

from __future__ import annotations

from .base import BaseBackend, VlmBackend
from .config import BACKENDS, VlmConfig
from .errors import MissingExtraError, VlmError, VlmRequestError, VlmServeError
from .schema import UnboundedSchemaError, estimate_max_tokens, make_xgrammar_safe
from .types import Conversation, Failure, FailureKind, VlmResult


def make_backend(config: VlmConfig) -> BaseBackend:
    """Build the backend named by ``config.backend``; a missing optional dependency raises
    ``MissingExtraError`` (an ImportError) whose message holds the exact ``pip install`` command."""
    if config.backend == "transformers":
        from .transformers_backend import TransformersBackend

        return TransformersBackend(config)
    if config.backend == "vllm":
        from .vllm_backend import VllmBackend

        return VllmBackend(config)
    if config.backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(config)
    raise ValueError(f"--vlm.backend={config.backend!r}: choose one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "BaseBackend",
    "Conversation",
    "Failure",
    "FailureKind",
    "MissingExtraError",
    "UnboundedSchemaError",
    "VlmBackend",
    "VlmConfig",
    "VlmError",
    "VlmRequestError",
    "VlmResult",
    "VlmServeError",
    "estimate_max_tokens",
    "make_backend",
    "make_xgrammar_safe",
]
