"""Schema-constrained decoding for ``transformers.generate`` with xgrammar (runs on CPU).

One matcher per batch row, rows without a schema stay unconstrained; a new processor per ``generate``
call. The tokenizer info blanks every special token (``<|im_start|>``, ``<|image_pad|>``, ...) and every
id past the real vocabulary, so they can never appear inside a JSON string; only the stop tokens end it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    import xgrammar as xgr
    from transformers import LogitsProcessor, PreTrainedTokenizerBase


def build_tokenizer_info(
    tokenizer: PreTrainedTokenizerBase, model_vocab_size: int, stop_token_ids: Sequence[int]
) -> xgr.TokenizerInfo:
    import xgrammar as xgr

    detected = xgr.TokenizerInfo.from_huggingface(
        tokenizer, vocab_size=model_vocab_size, stop_token_ids=list(stop_token_ids)
    )
    encoded: list[str] = [""] * model_vocab_size
    for token, idx in tokenizer.get_vocab().items():
        if idx < model_vocab_size:
            encoded[idx] = token
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    for idx, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            special.add(int(idx))
    for idx in special:
        if idx < model_vocab_size:
            encoded[idx] = ""  # xgrammar treats empty tokens as special: never allowed inside the grammar
    return xgr.TokenizerInfo(
        encoded,
        vocab_type=detected.vocab_type,
        vocab_size=model_vocab_size,
        stop_token_ids=list(stop_token_ids),
        add_prefix_space=detected.add_prefix_space,
    )


class GrammarCache:
    """Compiles JSON schemas once per (tokenizer, schema); compact JSON only (no free whitespace)."""

    def __init__(self, tokenizer_info: xgr.TokenizerInfo) -> None:
        import xgrammar as xgr

        self.tokenizer_info = tokenizer_info
        # xgrammar 0.2.8's own compile cache fails on printable-string patterns longer than ~128 characters
        # ("per_rule_fsm_hashes ... has_value()"); compiled grammars are cached per schema here instead.
        self._compiler = xgr.GrammarCompiler(tokenizer_info, max_threads=2, cache_enabled=False)
        self._cache: dict[str, xgr.CompiledGrammar] = {}
        self._lock = threading.Lock()

    def get(self, schema: Mapping[str, Any] | None) -> xgr.CompiledGrammar | None:
        if schema is None:
            return None
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                hit = self._compiler.compile_json_schema(
                    json.dumps(schema), any_whitespace=False, separators=(",", ":"), strict_mode=True
                )
                self._cache[key] = hit
            return hit


def make_logits_processor(compiled: Sequence[xgr.CompiledGrammar | None], vocab_size: int) -> LogitsProcessor:
    """A ``transformers.LogitsProcessor`` enforcing ``compiled[i]`` on row i (None: unconstrained)."""
    import xgrammar as xgr
    from transformers import LogitsProcessor

    class _RowGrammarProcessor(LogitsProcessor):
        def __init__(self) -> None:
            self.matchers = [xgr.GrammarMatcher(c) if c is not None else None for c in compiled]
            self.rows = [i for i, m in enumerate(self.matchers) if m is not None]
            self.bitmask = xgr.allocate_token_bitmask(len(self.matchers), vocab_size)
            self.started = False

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            if input_ids.shape[0] != len(self.matchers):
                raise RuntimeError(
                    f"grammar processor built for {len(self.matchers)} rows got {input_ids.shape[0]} (beam search is not supported)"
                )
            if self.started:
                last = input_ids[:, -1].tolist()
                for i in self.rows:
                    matcher = self.matchers[i]
                    if not matcher.is_terminated() and not matcher.accept_token(last[i]):
                        raise RuntimeError(f"row {i}: token {last[i]} rejected by the grammar")
            self.started = True
            active = [i for i in self.rows if not self.matchers[i].is_terminated()]
            if not active:
                return scores
            for i in active:
                self.matchers[i].fill_next_token_bitmask(self.bitmask, i)
            device = scores.device
            work = scores if device.type in ("cpu", "cuda") else scores.to("cpu")
            xgr.apply_token_bitmask_inplace(
                work, self.bitmask.to(work.device), vocab_size=vocab_size, indices=active
            )
            return work if work is scores else work.to(device)

    return _RowGrammarProcessor()
