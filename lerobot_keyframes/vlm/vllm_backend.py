"""In-process vLLM backend: one ``vllm.LLM`` per process, ``LLM.chat`` with ``image_pil`` blocks + uuids.

Conversations with a video go through ``LLM.generate`` instead, with the frames and vLLM's video metadata
(`messages.video_server_metadata`): ``LLM.chat`` cannot say when pre-sampled frames were taken and vLLM
would place them at 1 frame/s from 0 s.

Schemas are enforced by vLLM's structured outputs (xgrammar, compact JSON: ``disable_any_whitespace``,
without which greedy decoding may emit whitespace forever).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .batching import InProcessBackend
from .config import VlmConfig
from .errors import MissingExtraError
from .messages import has_video, to_hf_messages, to_vllm_messages, video_server_metadata
from .schema import grammar_schema
from .types import Conversation, JsonSchema, RawOutput
from .vllm_cpu import capped_kv_cache_bytes, kv_cache_space_set

if TYPE_CHECKING:
    from vllm import LLM, SamplingParams

logger = logging.getLogger(__name__)

_ENGINES: dict[tuple[Any, ...], LLM] = {}
_ENGINE_LOCK = threading.Lock()
# One thread inside the engine at a time, whatever path it came by (two threads in one `vllm.LLM` abort the
# process with a corrupted heap): every backend object on this process's engine takes it.
_ENTRY_LOCK = threading.Lock()
_MAIN_GUARD = re.compile(r"""if\s+__name__\s*==\s*['"]__main__['"]""")


def _engine_key(cfg: VlmConfig) -> tuple[Any, ...]:
    return (
        cfg.model_id,
        cfg.revision,
        cfg.dtype_name,
        cfg.tensor_parallel_size,
        cfg.max_model_len,
        cfg.gpu_memory_utilization,
        cfg.max_num_seqs,
        tuple(sorted(cfg.limit_mm_per_prompt.items())),
        cfg.enforce_eager,
        cfg.trust_remote_code,
        cfg.seed,
        cfg.min_pixels,
        cfg.max_pixels,
    )


def main_module_is_guarded() -> bool:
    """True when re-importing ``__main__`` in a spawned child is harmless (guarded script, -m, REPL)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or not os.path.isfile(path):
        return True
    if getattr(main, "__spec__", None) is not None:  # python -m pkg: the child imports it as a module
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return bool(_MAIN_GUARD.search(fh.read()))
    except OSError:
        return True


def apply_multiprocessing_guard() -> None:
    """Run vLLM's engine core in this process when a spawned engine process would break.

    vLLM starts its engine in a child process; with the ``spawn`` method the child re-imports the user's
    script, which re-runs unguarded top-level code (``if __name__ == "__main__":`` missing), and daemonic
    processes (``datasets.map(num_proc=...)`` workers) may not have children at all. In both cases we set
    ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` unless the user chose a value.
    """
    if "VLLM_ENABLE_V1_MULTIPROCESSING" in os.environ:
        return
    reason = None
    if multiprocessing.current_process().daemon:
        reason = "this is a daemonic worker process"
    elif not main_module_is_guarded():
        reason = 'the main script has no `if __name__ == "__main__":` guard'
    if reason:
        logger.warning("vLLM engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0): %s", reason)
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"


class VllmBackend(InProcessBackend):
    """``vllm.LLM(...).chat(...)`` with per-request structured outputs; the engine is built on first use."""

    name = "vllm"

    def __init__(self, config: VlmConfig) -> None:
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("vllm", "vllm", exc) from exc
        super().__init__(config)

    @property
    def engine(self) -> LLM:
        key = _engine_key(self.config)
        with _ENGINE_LOCK:
            if key not in _ENGINES:
                if _ENGINES:
                    raise RuntimeError(
                        "a vLLM engine with another configuration already lives in this process; "
                        "call close() on its backend first (one engine per process)"
                    )
                _ENGINES[key] = self._build_engine()
            return _ENGINES[key]

    def _build_engine(self) -> LLM:
        from vllm import LLM

        apply_multiprocessing_guard()
        kwargs = self.engine_kwargs()
        logger.info("starting vLLM engine for %s", self.config.model_id)
        return LLM(**kwargs)

    def engine_kwargs(self) -> dict[str, Any]:
        """The ``vllm.LLM`` arguments of this configuration (on a CPU, with the KV cache capped)."""
        cfg = self.config
        kwargs: dict[str, Any] = {
            "model": cfg.model_id,
            "revision": cfg.revision,
            "tensor_parallel_size": cfg.tensor_parallel_size,
            "gpu_memory_utilization": cfg.gpu_memory_utilization,
            "limit_mm_per_prompt": dict(cfg.limit_mm_per_prompt),
            "enforce_eager": cfg.enforce_eager,
            "trust_remote_code": cfg.trust_remote_code,
            "seed": cfg.seed if cfg.seed is not None else 0,
            "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
        }
        if cfg.dtype_name != "auto":
            kwargs["dtype"] = cfg.dtype_name
        if cfg.max_model_len is not None:
            kwargs["max_model_len"] = cfg.max_model_len
        if cfg.max_num_seqs is not None:
            kwargs["max_num_seqs"] = cfg.max_num_seqs
        if cfg.processor_kwargs:
            kwargs["mm_processor_kwargs"] = cfg.processor_kwargs
        kv_bytes = self._cpu_kv_cache_cap()
        if kv_bytes is not None:
            kwargs["kv_cache_memory_bytes"] = kv_bytes
        return kwargs

    def _cpu_kv_cache_cap(self) -> int | None:
        """On a CPU without ``VLLM_CPU_KVCACHE_SPACE``, a KV cache that leaves the machine its memory (`vllm_cpu`)."""
        from vllm.platforms import current_platform

        if not current_platform.is_cpu() or kv_cache_space_set():
            return None
        return capped_kv_cache_bytes(self.config.gpu_memory_utilization, "in-process engine")

    def release_engine(self) -> None:
        """Shut this process's engine down (the next call builds a new one)."""
        with _ENTRY_LOCK, _ENGINE_LOCK:
            engine = _ENGINES.pop(_engine_key(self.config), None)
        if engine is not None:
            shutdown = getattr(getattr(engine, "llm_engine", None), "shutdown", None) or getattr(
                engine, "shutdown", None
            )
            if callable(shutdown):
                try:
                    shutdown()
                except Exception:  # noqa: BLE001 - best effort at exit
                    logger.debug("vLLM shutdown failed", exc_info=True)
            del engine
            import gc

            gc.collect()

    def sampling_params(self, schema: JsonSchema | None, budget: int) -> SamplingParams:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        cfg = self.config
        kwargs: dict[str, Any] = {"max_tokens": budget, "temperature": cfg.temperature, "seed": cfg.seed}
        if cfg.temperature > 0:
            kwargs["top_p"] = cfg.top_p
        if schema is not None:
            kwargs["structured_outputs"] = StructuredOutputsParams(json=grammar_schema(schema))
        return SamplingParams(**kwargs)

    def video_prompt(self, conversation: Conversation) -> dict[str, Any]:
        """The ``LLM.generate`` input of a conversation with videos: the chat template's text, the images,
        and each video as (frames, metadata) so the model sees the frames at their real times."""
        import numpy as np

        messages, images, videos = to_hf_messages(conversation)
        text = self.engine.get_tokenizer().apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.config.chat_template_kwargs
        )
        data: dict[str, Any] = {
            "video": [
                (np.stack([np.asarray(f if f.mode == "RGB" else f.convert("RGB")) for f in block["video"]]),
                 {**video_server_metadata(block), "do_sample_frames": False})
                for block in videos
            ]
        }
        if images:
            data["image"] = images
        return {"prompt": text, "multi_modal_data": data}

    def _generate_raw(
        self, conversations: Sequence[Conversation], schemas: list[JsonSchema | None], budgets: list[int]
    ) -> list[RawOutput]:
        with _ENTRY_LOCK:
            return self._generate_in_engine(conversations, schemas, budgets)

    def _generate_in_engine(
        self, conversations: Sequence[Conversation], schemas: list[JsonSchema | None], budgets: list[int]
    ) -> list[RawOutput]:
        cfg = self.config
        params = [self.sampling_params(s, b) for s, b in zip(schemas, budgets)]
        groups: dict[bool, list[int]] = {False: [], True: []}  # has a video -> conversation indices
        for i, conversation in enumerate(conversations):
            groups[has_video(conversation)].append(i)
        outputs: list[Any] = [None] * len(conversations)
        for with_video, idx in groups.items():
            if not idx:
                continue
            if with_video:
                answers = self.engine.generate(
                    [self.video_prompt(conversations[i]) for i in idx], [params[i] for i in idx], use_tqdm=False
                )
            else:
                answers = self.engine.chat(
                    [to_vllm_messages(conversations[i], jpeg_quality=cfg.jpeg_quality) for i in idx],
                    [params[i] for i in idx],
                    use_tqdm=False,
                    add_generation_prompt=True,
                    chat_template_kwargs=dict(cfg.chat_template_kwargs) or None,
                )
            for i, answer in zip(idx, answers):
                outputs[i] = answer
        results: list[RawOutput] = []
        for out, schema in zip(outputs, schemas):
            completion = out.outputs[0]
            finish = "length" if completion.finish_reason == "length" else "stop"
            results.append(
                RawOutput(
                    text=completion.text,
                    finish_reason=finish,
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=len(completion.token_ids),
                    schema_enforced=schema is not None,
                )
            )
        return results
