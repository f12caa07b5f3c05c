"""Tiny offline Qwen-VL models: built without network, deterministic, loadable by stock transformers."""

from __future__ import annotations

import json
import os

import pytest
import torch

from lerobot_keyframes.testing.tiny_qwen import FAMILIES, SPECIAL_TOKENS, build_tiny_qwen, tiny_qwen_cached

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_offline_with_auto_classes(family: str) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = tiny_qwen_cached(family)
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 2_000_000
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    assert model.config.model_type == family
    tok = processor.tokenizer
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert tok.eos_token == "<|im_end|>" and tok.padding_side == "left"
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "video"}, {"type": "text", "text": "hi"}]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|video_pad|><|vision_end|>hi" in text
    assert "README.md" in os.listdir(path) and "meaningless" in (path / "README.md").read_text()


def test_deterministic_for_a_seed(tmp_path) -> None:
    from safetensors.torch import load_file

    a = load_file(build_tiny_qwen("qwen2_vl", tmp_path / "a", seed=7) / "model.safetensors")
    b = load_file(build_tiny_qwen("qwen2_vl", tmp_path / "b", seed=7) / "model.safetensors")
    c = load_file(build_tiny_qwen("qwen2_vl", tmp_path / "c", seed=8) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (
        tmp_path / "b" / "tokenizer.json"
    ).read_bytes()


@pytest.mark.parametrize("family", FAMILIES)
def test_head_dim_64_variant_for_vllm(family: str, tmp_path) -> None:
    path = build_tiny_qwen(family, tmp_path / family, head_dim=64)
    text = json.loads((path / "config.json").read_text())["text_config"]
    head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    assert head_dim == 64
    rope = text.get("rope_parameters") or text.get("rope_scaling")
    assert sum(rope["mrope_section"]) == 32
    assert rope.get("mrope_interleaved", False) == (family == "qwen3_vl")


def test_cache_is_atomic_and_reused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEROBOT_KEYFRAMES_CACHE", str(tmp_path))
    first = tiny_qwen_cached("qwen2_vl", seed=3)
    assert first.parent == tmp_path / "models" and first.name.startswith("qwen2_vl-")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert tiny_qwen_cached("qwen2_vl", seed=3) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert tiny_qwen_cached("qwen2_vl", seed=4) != first
    assert [
        p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".")
    ] == []  # no temp dirs left


def test_unknown_family_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="qwen2_vl, qwen2_5_vl, qwen3_vl"):
        build_tiny_qwen("llava", tmp_path)
