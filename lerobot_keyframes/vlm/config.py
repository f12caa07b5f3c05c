"""VLM settings: one frozen dataclass, field names follow ``lerobot-annotate``'s ``--vlm.*`` flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

Backend = Literal["transformers", "vllm", "openai"]
StructuredOutput = Literal["auto", "schema", "json_object", "off"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]  # the OpenAI API's values
# Weight precision; the short spellings are transformers' and vLLM's (`half` = float16, `float` = float32).
Dtype = Literal["auto", "bfloat16", "float16", "float32", "bf16", "fp16", "fp32", "half", "float"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)
STRUCTURED_OUTPUT_MODES: tuple[StructuredOutput, ...] = get_args(StructuredOutput)
REASONING_EFFORTS: tuple[ReasoningEffort, ...] = get_args(ReasoningEffort)
DTYPES: tuple[Dtype, ...] = get_args(Dtype)
_DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


@dataclass(frozen=True)
class VlmConfig:
    """How to reach a vision-language model and how to sample from it.

    Shared by every backend; a field a backend has no use for is ignored by it.

    ``structured_output`` (servers; the transformers and vllm backends always enforce a given schema with
    their own grammar: an xgrammar logits processor, vLLM structured outputs):
      - ``"auto"`` (default): ``response_format`` json_schema, falling back to plain generation + tolerant
        JSON extraction when the server rejects the schema request;
      - ``"schema"``: enforce the schema, never fall back (a server that rejects it is an error);
      - ``"json_object"``: ask for any JSON object (``response_format={"type": "json_object"}``), validate
        afterwards;
      - ``"off"``: no constraint; parse the text with the tolerant extractor.
    """

    # lerobot-annotate's names for the same knobs.
    FLAG_ALIASES: ClassVar[dict[str, str]] = {"serve_ready_timeout_s": "serve_timeout"}

    backend: Backend = "transformers"  # in-process HF/vLLM model, or an OpenAI-compatible server
    model_id: str = "Qwen/Qwen2.5-VL-3B-Instruct"  # Hub id or local dir (openai: the served model name)
    revision: str | None = None  # model branch, tag or commit (unset: default branch; openai backend: auto_serve only)
    # Sampling. temperature == 0 means greedy (deterministic); a seed makes sampling reproducible.
    max_new_tokens: int = 512  # token budget per answer (retried once larger on truncation)
    temperature: float = 0.0  # sampling temperature; 0: greedy decoding
    top_p: float = 1.0  # nucleus sampling cutoff in (0, 1], used only when temperature > 0
    seed: int | None = None  # sampling seed for reproducible runs (unset: not seeded)
    structured_output: StructuredOutput = "auto"  # how servers enforce schemas (openai backend only)
    # When an answer stops on the token budget (finish_reason "length"), retry it once with
    # max_new_tokens * truncation_retry_factor (capped by truncation_retry_max_tokens).
    truncation_retry_factor: float = 2.0  # retry budget = max_new_tokens x this; <= 1 disables the retry
    truncation_retry_max_tokens: int = 8192  # cap on the retry budget (tokens)
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)  # JSON of extra chat template kwargs
    mm_processor_kwargs: dict[str, Any] = field(default_factory=dict)  # JSON of extra multimodal processor kwargs
    # Image resolution bounds handed to the Qwen-VL processor (None: the model's own defaults).
    min_pixels: int | None = None  # lower bound on each image/frame's area (px); unset: the model's default
    max_pixels: int | None = None  # upper bound on each image/frame's area (px); unset: the model's default
    camera_key: str | None = None  # default camera for plan and interjections (unset: the first; unknown: an error)
    # transformers backend
    dtype: Dtype = "auto"  # weight precision (transformers auto: bf16/fp16 on GPU, fp32 on CPU)
    device: str = "auto"  # transformers only: auto|cpu|cuda|cuda:N (auto: cuda when available)
    attn_implementation: str | None = None  # transformers only, e.g. sdpa|flash_attention_2 (unset: model default)
    trust_remote_code: bool = False  # run custom code from the model repo (transformers, vllm, auto_serve)
    batch_size: int = 8  # transformers only: conversations per generate() call
    # vllm backend (and auto_serve)
    tensor_parallel_size: int = 1  # GPUs the model is split across
    max_model_len: int | None = None  # context length cap (tokens); unset: the model's own
    gpu_memory_utilization: float = 0.9  # fraction of GPU memory vLLM may take, 0-1
    max_num_seqs: int | None = None  # max sequences vLLM batches at once (unset: vLLM's default)
    limit_mm_per_prompt: dict[str, int] = field(default_factory=lambda: {"image": 8, "video": 1})  # JSON max per prompt
    enforce_eager: bool = False  # disable CUDA graphs (less GPU memory and faster start, slower decoding)
    # openai backend: one or more comma-separated base URLs, used round-robin.
    api_base: str = "http://127.0.0.1:8000/v1"  # server base URL(s), comma-separated
    api_key: str | None = field(default=None, repr=False)  # server key (unset: $OPENAI_API_KEY); never in logs
    client_concurrency: int = 16  # max requests in flight at once across the process, retries included
    request_timeout: float = 120.0  # per-request timeout (s)
    max_retries: int = 5  # retries per request on 408/409/425/429/5xx, timeouts, connection errors, bad answers
    retry_backoff: float = 0.5  # base retry delay (s), doubled per retry, with jitter
    retry_backoff_max: float = 30.0  # cap on one retry delay (s), a server's Retry-After included
    jpeg_quality: int = 90  # JPEG quality (1-95) of frames sent as data URLs (openai; vllm: video frames only)
    # openai backend: start `python -m vllm.entrypoints.openai.api_server` for model_id on api_base's port.
    auto_serve: bool = False  # start a vLLM server for model_id on api_base's port (reuses one already serving it)
    serve_timeout: float = 600.0  # how long auto_serve waits for the server to be ready (s)
    serve_args: tuple[str, ...] = ()  # extra vLLM server arguments, comma-separated, e.g. --quantization=fp8
    # lerobot-annotate 0.6.1 knobs, same names (UNAPPLIED_VLM_SETTINGS says what each does here).
    serve_port: int | None = None  # auto_serve port; unset: api_base's port (set alone: api_base uses this port)
    serve_command: str | None = None  # lerobot-annotate's `vllm serve MODEL ...` ({port}: each server's): auto_serve starts it; its options set the fields below
    parallel_servers: int = 1  # auto_serve: this many servers on consecutive ports from api_base's, round-robin
    num_gpus: int = 0  # parallel servers: GPUs they share (0: one each); one server: its tensor_parallel_size
    # lerobot-annotate has no in-process backend: transformers/vllm ignore it (use chat_template_kwargs)
    reasoning_effort: ReasoningEffort | None = None  # thinking budget: the request's reasoning_effort field

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"--vlm.backend={self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.structured_output not in STRUCTURED_OUTPUT_MODES:
            raise ValueError(
                f"--vlm.structured_output={self.structured_output!r}: choose one of "
                f"{', '.join(STRUCTURED_OUTPUT_MODES)}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"--vlm.dtype={self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.max_new_tokens < 1:
            raise ValueError(f"--vlm.max_new_tokens must be >= 1 (got {self.max_new_tokens})")
        if self.temperature < 0:
            raise ValueError(f"--vlm.temperature must be >= 0 (got {self.temperature})")
        if self.client_concurrency < 1:
            raise ValueError(f"--vlm.client_concurrency must be >= 1 (got {self.client_concurrency})")
        if self.max_retries < 0:
            raise ValueError(f"--vlm.max_retries must be >= 0 (got {self.max_retries})")
        if self.reasoning_effort not in (None, *REASONING_EFFORTS):
            raise ValueError(f"--vlm.reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, "
                             f"got {self.reasoning_effort!r}")
        if self.parallel_servers < 1:
            raise ValueError(f"--vlm.parallel_servers must be >= 1 (got {self.parallel_servers})")
        if self.batch_size < 1:
            raise ValueError(f"--vlm.batch_size must be >= 1 (got {self.batch_size})")
        for i, base in enumerate(self.api_bases):  # OpenAI clients send the key as a header, never from the URL
            if "@" in urlsplit(base).netloc:
                raise ValueError(f"--vlm.api_base: URL {i + 1} holds credentials (user:key@host), which OpenAI-"
                                 "compatible clients never send and which would be printed in errors; pass the key "
                                 "with --vlm.api_key or OPENAI_API_KEY")

    @property
    def dtype_name(self) -> Literal["auto", "bfloat16", "float16", "float32"]:
        """`dtype` in its long spelling (what torch and vLLM call it)."""
        return _DTYPE_NAMES.get(self.dtype, self.dtype)  # type: ignore[return-value]

    @property
    def processor_kwargs(self) -> dict[str, Any]:
        """``mm_processor_kwargs`` with ``min_pixels``/``max_pixels`` added (a key given there wins)."""
        out = dict(self.mm_processor_kwargs)
        for key, value in (("min_pixels", self.min_pixels), ("max_pixels", self.max_pixels)):
            if value is not None:
                out.setdefault(key, value)
        return out

    @property
    def api_bases(self) -> list[str]:
        """``api_base`` split on commas, trailing slashes removed."""
        return [b.strip().rstrip("/") for b in self.api_base.split(",") if b.strip()]

    def replace(self, **changes: Any) -> VlmConfig:
        return dataclasses.replace(self, **changes)


# (flag, lerobot default, what happens here): changed values are warned about once by the CLI.
UNAPPLIED_VLM_SETTINGS: tuple[tuple[str, Any, str], ...] = ()


def unapplied_vlm_settings(config: VlmConfig, *, local: bool = True) -> list[str]:
    """One message per lerobot-annotate VLM setting that was changed but has no effect here.

    ``local=False``: the run is submitted elsewhere (a job), whose own run warns about what it ignores."""
    out = [f"--vlm.{name}={getattr(config, name)!r} is accepted for lerobot-annotate compatibility but not "
           f"applied: {effect}" for name, default, effect in UNAPPLIED_VLM_SETTINGS
           if getattr(config, name, default) != default]
    if config.parallel_servers > 1 and not (config.backend == "openai" and config.auto_serve):
        out.append(f"--vlm.parallel_servers={config.parallel_servers} starts servers with --vlm.backend=openai "
                   "--vlm.auto_serve=true only (as in lerobot-annotate); to use running servers, list their URLs "
                   "in --vlm.api_base (comma-separated, round-robin)")
    if local and config.serve_command and not (config.backend == "openai" and config.auto_serve):
        if config.backend == "openai":
            why = "without it the run uses the servers already at --vlm.api_base"
        elif config.backend == "vllm":
            why = ("--vlm.backend=vllm runs the model in this process; only the command's engine options "
                   "(--max-model-len, --max-num-seqs, ...) apply to it")
        else:
            why = f"--vlm.backend={config.backend} runs the model in this process and ignores it"
        out.append(f"--vlm.serve_command is not run: it starts a server with --vlm.backend=openai "
                   f"--vlm.auto_serve=true only (as in lerobot-annotate); {why}")
    if config.reasoning_effort and config.backend != "openai":
        out.append(f"--vlm.reasoning_effort={config.reasoning_effort!r} is sent to OpenAI-compatible servers only "
                   f"(lerobot-annotate's openai backend); --vlm.backend={config.backend} ignores it: cap thinking "
                   "with --vlm.chat_template_kwargs")
    return out


# `vllm serve` options of a lerobot-annotate --vlm.serve_command that are VlmConfig fields here.
_SERVE_OPTIONS: dict[str, tuple[str, Any]] = {
    "--tensor-parallel-size": ("tensor_parallel_size", int), "-tp": ("tensor_parallel_size", int),
    "--max-model-len": ("max_model_len", int), "--gpu-memory-utilization": ("gpu_memory_utilization", float),
    "--max-num-seqs": ("max_num_seqs", int), "--revision": ("revision", str), "--dtype": ("dtype", str),
    "--seed": ("seed", int),
}
_SERVE_SWITCHES = {"--enforce-eager": "enforce_eager", "--trust-remote-code": "trust_remote_code"}
_SERVE_OWNED = ("--port", "--host", "--served-model-name", "--api-key", "--model")  # set by auto_serve itself


def serve_command_settings(command: str) -> tuple[str | None, dict[str, Any], tuple[str, ...]]:
    """(model, VlmConfig fields, remaining server arguments) of a `vllm serve MODEL ...` command.

    lerobot-annotate's --vlm.serve_command replaces its auto-serve command; here the options with a VlmConfig
    field become that field (so in-process vLLM gets them too) and the rest go to auto_serve as serve_args."""
    import shlex

    tokens = shlex.split(command.replace("{port}", "0"))
    model = None
    if "serve" in tokens:
        rest = tokens[tokens.index("serve") + 1:]
        if rest and not rest[0].startswith("-"):
            model, rest = rest[0], rest[1:]
    else:  # e.g. python -m vllm.entrypoints.openai.api_server --model X ...
        rest = tokens[next((i for i, t in enumerate(tokens) if t.startswith("--")), len(tokens)):]
    fields: dict[str, Any] = {}
    extra: list[str] = []
    i = 0
    while i < len(rest):
        name, eq, value = rest[i].partition("=")
        takes_value = not eq and i + 1 < len(rest) and not rest[i + 1].startswith("--")
        if not eq and takes_value and name not in _SERVE_SWITCHES:
            value, i = rest[i + 1], i + 1
        if name in _SERVE_SWITCHES:
            fields[_SERVE_SWITCHES[name]] = True
        elif name in _SERVE_OPTIONS:
            field_name, convert = _SERVE_OPTIONS[name]
            fields[field_name] = convert(value)
        elif name == "--model":
            model = value
        elif name not in _SERVE_OWNED and name.startswith("-"):
            extra.append(f"{name}={value}" if value else name)
        i += 1
    return model, fields, tuple(extra)

