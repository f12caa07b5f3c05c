"""Exceptions of the VLM layer: each message says what to do next."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Backend

EXTRAS_FOR_BACKEND: dict[str, str] = {"transformers": "transformers", "vllm": "vllm", "openai": "openai"}


class VlmError(RuntimeError):
    """Base class for VLM backend errors."""


class MissingExtraError(ImportError, VlmError):
    """An optional dependency of a backend is not installed."""

    def __init__(self, backend: Backend, module: str, cause: BaseException | None = None) -> None:
        extra = EXTRAS_FOR_BACKEND.get(backend, backend)
        self.backend = backend
        self.module = module
        self.install_command = f"pip install 'lerobot_keyframes[{extra}]'"
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        super().__init__(
            f"--vlm.backend={backend} needs the Python package '{module}', which is not importable{detail}. "
            f"Install it with: {self.install_command}"
        )


class VlmRequestError(VlmError):
    """A request to a model server failed for good (after retries, or with a non-retryable status)."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 1, url: str | None = None):
        self.status = status
        self.attempts = attempts
        self.url = url
        super().__init__(message)


class VlmServeError(VlmError):
    """auto_serve could not start, reach or verify a local vLLM server."""
