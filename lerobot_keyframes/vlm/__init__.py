"""Vision-language model backends with enforced structured output.

    from lerobot_keyframes.vlm import VlmConfig, make_backend
    vlm = make_backend(VlmConfig(backend="transformers", model_id="Qwen/Qwen2.5-VL-3B-Instruct"))
    results = vlm.generate(conversations, schema)   # one VlmResult per conversation, in order

Backends: ``transformers`` (in-process, xgrammar logits processor), ``vllm`` (in-process ``vllm.LLM``,
structured outputs), ``openai`` (any OpenAI-compatible server, optional ``auto_serve`` of a local vLLM).
Every backend may be shared by many coroutines and threads: an in-process one sends its calls through its own
`batching.BatchingScheduler` (one engine thread; concurrent ``agenerate`` calls share engine batches).
Importing this package is cheap: torch, transformers, vllm and openai load when a backend is built.
Retries (a truncated answer, a failed server request) follow `retry`; the Qwen-VL family table is `families`.
"""

from __future__ import annotations

from .base import BaseBackend, VlmBackend
from .config import BACKENDS, Backend, VlmConfig
from .errors import MissingExtraError, VlmError, VlmRequestError, VlmServeError
from .families import FAMILIES, VisionFamily, detect_family, vision_family
from .retry import RetryPolicy, TruncationRetry
from .schema import UnboundedSchemaError, estimate_max_tokens, make_xgrammar_safe
from .types import Conversation, Failure, FailureKind, FinishReason, VlmResult


def make_backend(config: VlmConfig) -> BaseBackend:
    """Build the backend named by ``config.backend``; a missing optional dependency raises
    ``MissingExtraError`` (an ImportError) whose message holds the exact ``pip install`` command.
    The model (or server) is loaded on first use; the backend is safe to call from many coroutines and threads."""
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
    "FAMILIES",
    "Backend",
    "BaseBackend",
    "Conversation",
    "Failure",
    "FailureKind",
    "FinishReason",
    "MissingExtraError",
    "RetryPolicy",
    "TruncationRetry",
    "UnboundedSchemaError",
    "VisionFamily",
    "VlmBackend",
    "VlmConfig",
    "VlmError",
    "VlmRequestError",
    "VlmResult",
    "VlmServeError",
    "detect_family",
    "estimate_max_tokens",
    "make_backend",
    "make_xgrammar_safe",
    "vision_family",
]
