"""VLM settings: one frozen dataclass, field names follow ``lerobot-annotate``'s ``--vlm.*`` flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

BACKENDS = ("transformers", "vllm", "openai")
STRUCTURED_OUTPUT_MODES = ("auto", "schema", "json_object", "off")


@dataclass(frozen=True)
class VlmConfig:
    """How to reach a vision-language model and how to sample from it.

    Shared by every backend; a field a backend has no use for is ignored by it.

    ``structured_output``:
      - ``"auto"`` (default): enforce the JSON schema with the backend's own mechanism (xgrammar logits
        processor for transformers, vLLM structured outputs, ``response_format`` json_schema for servers)
        and, for servers only, fall back to plain generation + tolerant JSON extraction when the server
        rejects the schema request;
      - ``"schema"``: enforce the schema, never fall back (a server that rejects it is an error);
      - ``"json_object"``: ask servers for any JSON object (``response_format={"type": "json_object"}``),
        validate afterwards; transformers/vLLM use a generic JSON grammar;
      - ``"off"``: no constraint; parse the text with the tolerant extractor.
    """

    backend: str = "transformers"
    model_id: str = "Qwen/Qwen2.5-VL-3B-Instruct"
    revision: str | None = None
    # Sampling. temperature == 0 means greedy (deterministic); a seed makes sampling reproducible.
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    structured_output: str = "auto"
    # When an answer stops on the token budget (finish_reason "length"), retry it once with
    # max_new_tokens * truncation_retry_factor (capped by truncation_retry_max_tokens).
    truncation_retry_factor: float = 2.0
    truncation_retry_max_tokens: int = 8192
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    mm_processor_kwargs: dict[str, Any] = field(default_factory=dict)
    # Image resolution bounds handed to the Qwen-VL processor (None: the model's own defaults).
    min_pixels: int | None = None
    max_pixels: int | None = None
    camera_key: str | None = None
    # transformers backend
    dtype: str = "auto"
    device: str = "auto"
    attn_implementation: str | None = None
    trust_remote_code: bool = False
    batch_size: int = 8
    # vllm backend (and auto_serve)
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int | None = None
    limit_mm_per_prompt: dict[str, int] = field(default_factory=lambda: {"image": 8, "video": 1})
    enforce_eager: bool = False
    # openai backend: one or more comma-separated base URLs, used round-robin.
    api_base: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = field(default=None, repr=False)  # never in logs
    client_concurrency: int = 16
    request_timeout: float = 120.0
    max_retries: int = 5
    retry_backoff: float = 0.5
    retry_backoff_max: float = 30.0
    jpeg_quality: int = 90
    # openai backend: start `python -m vllm.entrypoints.openai.api_server` for model_id on api_base's port.
    auto_serve: bool = False
    serve_timeout: float = 600.0
    serve_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"--vlm.backend={self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.structured_output not in STRUCTURED_OUTPUT_MODES:
            raise ValueError(
                f"--vlm.structured_output={self.structured_output!r}: choose one of "
                f"{', '.join(STRUCTURED_OUTPUT_MODES)}"
            )
        if self.max_new_tokens < 1:
            raise ValueError(f"--vlm.max_new_tokens must be >= 1 (got {self.max_new_tokens})")
        if self.temperature < 0:
            raise ValueError(f"--vlm.temperature must be >= 0 (got {self.temperature})")
        if self.client_concurrency < 1:
            raise ValueError(f"--vlm.client_concurrency must be >= 1 (got {self.client_concurrency})")
        if self.max_retries < 0:
            raise ValueError(f"--vlm.max_retries must be >= 0 (got {self.max_retries})")
        if self.batch_size < 1:
            raise ValueError(f"--vlm.batch_size must be >= 1 (got {self.batch_size})")

    @property
    def api_bases(self) -> list[str]:
        """``api_base`` split on commas, trailing slashes removed."""
        return [b.strip().rstrip("/") for b in self.api_base.split(",") if b.strip()]

    def replace(self, **changes: Any) -> VlmConfig:
        return dataclasses.replace(self, **changes)
