"""In-process ``transformers`` backend: AutoProcessor + AutoModelForImageTextToText, batched, left-padded.

The model is loaded lazily, once per process and configuration (a module-level cache), so a backend object
pickles as its config only and survives ``datasets.map(num_proc=...)`` with spawn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .batching import InProcessBackend
from .config import VlmConfig
from .errors import MissingExtraError
from .messages import to_hf_messages, video_timing
from .types import Conversation, JsonSchema, RawOutput

if TYPE_CHECKING:
    import torch
    from PIL import Image
    from transformers import BatchFeature, PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

    from .grammar import GrammarCache

logger = logging.getLogger(__name__)

_LOADED: dict[tuple[Any, ...], _Loaded] = {}
_LOAD_LOCK = threading.Lock()


@dataclass
class _Loaded:
    """A model loaded in this process, shared by every backend object of the same configuration."""

    processor: ProcessorMixin
    model: PreTrainedModel
    device: torch.device
    stop_ids: list[int]
    pad_id: int
    vocab_size: int
    grammars: GrammarCache | None = None  # built on the first schema
    lock: threading.Lock = field(default_factory=threading.Lock)  # one generate() at a time per model


def _require() -> None:
    for module in ("torch", "transformers", "xgrammar", "torchvision"):
        try:
            __import__(module)
        except ImportError as exc:
            raise MissingExtraError("transformers", module, exc) from exc


def _load_key(cfg: VlmConfig) -> tuple[Any, ...]:
    return (
        cfg.model_id,
        cfg.revision,
        cfg.dtype_name,
        cfg.device,
        cfg.attn_implementation,
        cfg.trust_remote_code,
        cfg.min_pixels,
        cfg.max_pixels,
    )


def _resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    return torch.device(name)


def _resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    import torch

    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _load(cfg: VlmConfig) -> _Loaded:
    key = _load_key(cfg)
    with _LOAD_LOCK:
        if key in _LOADED:
            return _LOADED[key]
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = _resolve_device(cfg.device)
        dtype = _resolve_dtype(cfg.dtype_name, device)
        logger.info("loading %s (revision %s) on %s as %s", cfg.model_id, cfg.revision, device, dtype)
        common: dict[str, Any] = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
        try:
            processor = AutoProcessor.from_pretrained(cfg.model_id, **common)
            kwargs: dict[str, Any] = {"dtype": dtype, **common}
            if cfg.attn_implementation:
                kwargs["attn_implementation"] = cfg.attn_implementation
            model = AutoModelForImageTextToText.from_pretrained(cfg.model_id, **kwargs)
        except OSError as exc:
            raise OSError(
                f"cannot load --vlm.model_id={cfg.model_id!r} (revision {cfg.revision}): {exc}. "
                "Pass a local directory or a Hub id that is in the local cache (HF_HUB_OFFLINE=1 forbids downloads)."
            ) from exc
        model.to(device)
        model.eval()
        tokenizer = processor.tokenizer
        tokenizer.padding_side = "left"
        _apply_pixel_bounds(processor, cfg.min_pixels, cfg.max_pixels)
        stop_ids = _stop_ids(model, tokenizer)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
        vocab_size = int(model.get_output_embeddings().weight.shape[0])
        loaded = _Loaded(processor, model, device, stop_ids, int(pad_id), vocab_size)
        _LOADED[key] = loaded
        return loaded


def _apply_pixel_bounds(processor: ProcessorMixin, min_pixels: int | None, max_pixels: int | None) -> None:
    """--vlm.min_pixels/max_pixels on the image and video processors, in both spellings they read."""
    if min_pixels is None and max_pixels is None:
        return
    for proc in (processor.image_processor, getattr(processor, "video_processor", None)):
        if proc is None:
            continue
        size = dict(getattr(proc, "size", None) or {})
        if min_pixels is not None:
            size["shortest_edge"] = min_pixels
        if max_pixels is not None:
            size["longest_edge"] = max_pixels
        proc.size = size
        for attr, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
            if value is not None and hasattr(proc, attr):
                setattr(proc, attr, value)


def _stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokens that end an answer: the generation config's eos ids, and the tokenizer's."""
    gen = model.generation_config
    eos = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
    stop_ids = sorted({int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None})
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in stop_ids:
        stop_ids.append(int(tokenizer.eos_token_id))
    return stop_ids


class TransformersBackend(InProcessBackend):
    """Batched in-process generation with schema enforcement by an xgrammar logits processor."""

    name = "transformers"

    def __init__(self, config: VlmConfig) -> None:
        _require()
        super().__init__(config)

    @property
    def loaded(self) -> _Loaded:
        return _load(self.config)

    def release_engine(self) -> None:
        """Drop this process's copy of the model (the next call reloads it)."""
        with _LOAD_LOCK:
            _LOADED.pop(_load_key(self.config), None)

    def _grammars(self, state: _Loaded) -> GrammarCache:
        if state.grammars is None:
            from .grammar import GrammarCache, build_tokenizer_info

            info = build_tokenizer_info(state.processor.tokenizer, state.vocab_size, state.stop_ids)
            state.grammars = GrammarCache(info)
        return state.grammars

    def _generate_raw(
        self, conversations: Sequence[Conversation], schemas: list[JsonSchema | None], budgets: list[int]
    ) -> list[RawOutput]:
        state = self.loaded
        out: list[RawOutput] = []
        step = self.config.batch_size
        with state.lock:
            for start in range(0, len(conversations), step):
                stop = start + step
                out.extend(
                    self._run_batch(
                        state, conversations[start:stop], schemas[start:stop], max(budgets[start:stop])
                    )
                )
        return out

    def _processor_inputs(self, state: _Loaded, conversations: Sequence[Conversation]) -> BatchFeature:
        from transformers.video_utils import VideoMetadata

        texts: list[str] = []
        images: list[Image.Image] = []
        videos: list[list[Image.Image]] = []
        metadata: list[VideoMetadata] = []
        for conv in conversations:
            messages, conv_images, conv_videos = to_hf_messages(conv)
            texts.append(
                state.processor.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True, **self.config.chat_template_kwargs
                )
            )
            images.extend(conv_images)
            for block in conv_videos:
                frames = [f if f.mode == "RGB" else f.convert("RGB") for f in block["video"]]
                rate, stamps = video_timing(block)
                videos.append(frames)
                # frames_indices / fps == the real timestamps (Qwen3-VL writes them into the prompt);
                # len(indices) / total_num_frames * fps == the sampling rate (Qwen2.5-VL's temporal positions).
                metadata.append(
                    VideoMetadata(
                        total_num_frames=len(frames),
                        fps=rate,
                        frames_indices=[t * rate for t in stamps],
                        duration=len(frames) / rate,
                        width=frames[0].width,
                        height=frames[0].height,
                    )
                )
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs.update(videos=videos, video_metadata=metadata, do_sample_frames=False)
        kwargs.update(self.config.mm_processor_kwargs)
        return state.processor(**kwargs)

    def _run_batch(
        self,
        state: _Loaded,
        conversations: Sequence[Conversation],
        schemas: Sequence[JsonSchema | None],
        budget: int,
    ) -> list[RawOutput]:
        import torch

        cfg = self.config
        inputs = self._processor_inputs(state, conversations).to(state.device)
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": budget,
            "pad_token_id": state.pad_id,
            "eos_token_id": state.stop_ids,
        }
        if cfg.temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        enforced = any(s is not None for s in schemas)
        if enforced:
            from .grammar import make_logits_processor

            grammars = self._grammars(state)
            compiled = [grammars.get(s) for s in schemas]
            gen_kwargs["logits_processor"] = [make_logits_processor(compiled, state.vocab_size)]
        devices = [state.device] if state.device.type == "cuda" else []
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            if cfg.seed is not None:
                torch.manual_seed(cfg.seed)
            output = state.model.generate(**inputs, **gen_kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        generated = output[:, prompt_len:].tolist()
        stop = set(state.stop_ids)
        tokenizer = state.processor.tokenizer
        results: list[RawOutput] = []
        for row, schema, n_prompt in zip(generated, schemas, prompt_tokens):
            end = next((j for j, tok in enumerate(row) if tok in stop), None)
            if end is None:
                tokens, finish, n_completion = row, "length", len(row)
            else:
                tokens, finish, n_completion = row[:end], "stop", end + 1
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            results.append(
                RawOutput(
                    text=text,
                    finish_reason=finish,
                    prompt_tokens=int(n_prompt),
                    completion_tokens=n_completion,
                    schema_enforced=schema is not None,
                )
            )
        return results
