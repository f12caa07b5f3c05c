"""Tiny random-weight Qwen-VL models, built fully offline, for smoke tests and the offline demo.

The models are real ``Qwen2VLForConditionalGeneration`` / ``Qwen2_5_VLForConditionalGeneration`` /
``Qwen3VLForConditionalGeneration`` checkpoints (config + safetensors + processor + tokenizer + chat
template, < 2 MB) that load with ``AutoProcessor`` / ``AutoModelForImageTextToText`` under
``HF_HUB_OFFLINE=1`` and, with ``head_dim=64``, with vLLM on CPU. Their weights are random: **the text
they generate is meaningless**. They exercise every code path (processor, vision tower, mrope positions,
batching, schema-constrained decoding) and nothing else; never use them to judge annotation quality.

Nothing is downloaded: the byte-level BPE tokenizer is trained locally on a built-in corpus, the chat
template is written here, and the weights come from a seeded ``torch`` initialisation, so the same
``(family, head_dim, seed)`` and library versions give the same files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..vlm.families import FAMILY_NAMES, vision_family

logger = logging.getLogger(__name__)

FAMILIES = FAMILY_NAMES  # a tiny model of each Qwen-VL family (geometry from lerobot_keyframes.vlm.families)

# Bump when the recipe changes: it is part of the cache key of tiny_qwen_cached().
RECIPE_VERSION = 1

# Qwen's special tokens, in Qwen's order; they take the first ids of the vocabulary.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# A Qwen-VL style chat template: string or block content, image / video / text blocks (Qwen-VL and
# OpenAI spellings), generation prompt. Unknown kwargs (e.g. enable_thinking) are ignored.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] }}"
    "{%- else -%}"
    "{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' or content['type'] == 'image_url' or content['type'] == 'image_pil'"
    " or 'image' in content or 'image_url' in content -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif content['type'] == 'video' or content['type'] == 'video_url' or 'video' in content -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in content -%}"
    "{{ content['text'] }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<|im_start|>assistant\\n' }}"
    "{%- endif -%}"
)

# Training text for the tokenizer: robot-annotation words plus the JSON punctuation and digits that
# structured answers use, so the BPE merges make JSON cheap to emit.
_CORPUS = (
    "pick up the red cube and place it in the bowl. open the drawer, grasp the handle, pull it out. "
    "the robot arm moves to the left, rotates the gripper, releases the object on the table. "
    "push the button, close the lid, wipe the surface, stack the blocks, pour water into the cup. "
    "subtask start end time seconds frame camera front wrist top view episode task success failure "
    '{"subtasks": [{"start": 0.0, "end": 1.5, "text": "reach"}], "task": "pick", "ok": true} '
    '{"label": "grasp", "confidence": 0.9, "index": 12, "items": ["a", "b"], "done": false, "x": null} '
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 40 50 60 70 80 90 100 0.1 0.25 0.5 "
    "The quick brown fox jumps over the lazy dog. A B C D E F G H I J K L M N O P Q R S T U V W X Y Z "
)


def _family_check(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown tiny model family {family!r}: choose one of {', '.join(FAMILIES)}")


def _mrope_section(head_dim: int) -> list[int]:
    """Split head_dim/2 rotary frequencies over (t, h, w) like Qwen does (16/24/24 of 64)."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _train_tokenizer(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    data = json.loads(tok.to_str())
    vocab = {k: v for k, v in data["model"]["vocab"].items() if k not in SPECIAL_TOKENS}
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    # Special tokens first (ids 0..13), then the learned vocabulary in its trained order.
    ordered = {tok_: i for i, tok_ in enumerate(SPECIAL_TOKENS)}
    for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        ordered[token] = len(ordered)
    return ordered, merges


def _build_tokenizer(vocab_size: int) -> Any:
    from transformers import Qwen2Tokenizer

    vocab, merges = _train_tokenizer(vocab_size)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [t for t in SPECIAL_TOKENS if t not in ("<|endoftext|>", "<|im_end|>")]}
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 4096
    return tokenizer


def _patch_geometry(family: str, merge_key: str) -> dict[str, int]:
    """The family's vision patch sizes under the names a vision config (``spatial_merge_size``) or a
    processor (``merge_size``) uses."""
    fam = vision_family(family)
    return {"patch_size": fam.patch_size, merge_key: fam.merge_size, "temporal_patch_size": fam.temporal_patch_size}


def _build_config(family: str, head_dim: int, ids: dict[str, int], vocab_size: int) -> Any:
    from transformers import AutoConfig

    hidden = _hidden_size(family, head_dim)
    return AutoConfig.for_model(
        family,
        text_config=_text_config(family, head_dim, hidden, ids, vocab_size),
        vision_config=_vision_config(family, hidden),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


# Two query heads, one KV head.
_HEADS, _KV_HEADS = 2, 1


def _hidden_size(family: str, head_dim: int) -> int:
    """Qwen2/2.5 derive head_dim = hidden / heads, so hidden grows with head_dim; Qwen3 takes it explicitly."""
    return max(64, head_dim * _HEADS) if family != "qwen3_vl" else 64


def _text_config(family: str, head_dim: int, hidden: int, ids: dict[str, int], vocab_size: int) -> dict[str, Any]:
    """The language model's config; Qwen3 adds an explicit head_dim, interleaved mrope and no bos/eos ids."""
    rope: dict[str, Any] = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": _mrope_section(head_dim),
    }
    text: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": 2,
        "num_attention_heads": hidden // head_dim if family != "qwen3_vl" else _HEADS,
        "num_key_value_heads": _KV_HEADS,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "tie_word_embeddings": True,
        "initializer_range": 0.05,
        "rope_parameters": rope,
    }
    if family == "qwen3_vl":
        text["head_dim"] = head_dim
        text.pop("bos_token_id")
        text.pop("eos_token_id")
        rope["mrope_interleaved"] = True
    return text


def _vision_config(family: str, hidden: int) -> dict[str, Any]:
    """The smallest vision tower of each family whose output feeds a `hidden`-wide language model."""
    geometry = _patch_geometry(family, "spatial_merge_size")
    if family == "qwen2_vl":
        return {"depth": 1, "embed_dim": 32, "hidden_size": hidden, "mlp_ratio": 2, "num_heads": 2, **geometry}
    tower = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": hidden}
    if family == "qwen2_5_vl":
        return {**tower, **geometry, "window_size": 56, "fullatt_block_indexes": [1], "tokens_per_second": 2}
    return {
        **tower,
        **geometry,
        "num_position_embeddings": 64,
        "deepstack_visual_indexes": [0],
        "hidden_act": "gelu_pytorch_tanh",
    }


def _build_processor(family: str, tokenizer: Any) -> Any:
    from transformers import AutoProcessor  # noqa: F401  (import check: the processor classes need torchvision)
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    geometry = _patch_geometry(family, "merge_size")
    factor = vision_family(family).factor
    if family == "qwen3_vl":
        from transformers import Qwen3VLProcessor, Qwen3VLVideoProcessor

        image_processor = Qwen2VLImageProcessorPil(
            **geometry,
            min_pixels=factor * factor * 4,
            max_pixels=factor * factor * 16,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        )
        video_processor = Qwen3VLVideoProcessor(
            **geometry,
            size={"shortest_edge": factor * factor * 4, "longest_edge": factor * factor * 64},
            do_sample_frames=False,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        )
        return Qwen3VLProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            chat_template=CHAT_TEMPLATE,
        )
    from transformers import Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessorPil(
        **geometry, min_pixels=factor * factor * 4, max_pixels=factor * factor * 16
    )
    video_processor = Qwen2VLVideoProcessor(
        **geometry,
        min_pixels=factor * factor * 4,
        max_pixels=factor * factor * 64,
        do_sample_frames=False,
        cap_pixels_per_frame=True,
    )
    if family == "qwen2_vl":
        from transformers import Qwen2VLProcessor as Processor
    else:
        from transformers import Qwen2_5_VLProcessor as Processor
    return Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_qwen(
    family: str,
    out_dir: str | os.PathLike[str],
    *,
    head_dim: int = 16,
    seed: int = 0,
    vocab_size: int = 512,
    tokenizer_vocab: int = 400,
) -> Path:
    """Write a tiny random-weight Qwen-VL model of ``family`` to ``out_dir`` and return its path.

    ``family`` is ``qwen2_vl``, ``qwen2_5_vl`` or ``qwen3_vl``. ``head_dim=16`` is the fast default for
    transformers; vLLM's CPU attention needs ``head_dim=64``. The model's embedding has ``vocab_size`` rows,
    more than the ``tokenizer_vocab`` real tokens, like real Qwen checkpoints (padded vocabulary).
    Smoke-test model: its generated text is meaningless.
    """
    _family_check(family)
    if head_dim % 8 or head_dim < 8:
        raise ValueError(f"head_dim must be a multiple of 8 (got {head_dim})")
    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(tokenizer_vocab)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    if list(ids.values()) != list(range(len(SPECIAL_TOKENS))):
        raise RuntimeError(f"tiny tokenizer special ids are not 0..13: {ids}")
    if len(tokenizer) > vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, more than vocab_size={vocab_size}")
    config = _build_config(family, head_dim, ids, vocab_size)
    config.dtype = "float32"
    processor = _build_processor(family, tokenizer)

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    finally:
        torch.random.set_rng_state(state)
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "README.md").write_text(
        f"# tiny-{family} (head_dim={head_dim}, seed={seed})\n\n"
        "Random-weight smoke-test model built offline by `lerobot_keyframes.testing.build_tiny_qwen`.\n"
        "Its text is meaningless: it only exercises code paths (processor, vision tower, batching,\n"
        "structured output). Do not use it to judge annotations.\n"
    )
    return out


def _cache_root() -> Path:
    root = os.environ.get("LEROBOT_KEYFRAMES_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "lerobot_keyframes"


def _cache_key(family: str, head_dim: int, seed: int, extra: dict[str, Any]) -> str:
    import tokenizers
    import torch
    import transformers

    blob = json.dumps(
        {
            "family": family,
            "head_dim": head_dim,
            "seed": seed,
            "extra": extra,
            "recipe": RECIPE_VERSION,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "torch": torch.__version__.split("+")[0],
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def tiny_qwen_cached(family: str, *, head_dim: int = 16, seed: int = 0, **kwargs: Any) -> Path:
    """Build (once) and return a tiny model under the user cache dir.

    Location: ``$LEROBOT_KEYFRAMES_CACHE`` (default ``~/.cache/lerobot_keyframes``) ``/models/<family>-<hash>``,
    the hash covering the arguments, the recipe and the transformers/tokenizers/torch versions. The build
    goes to a temporary sibling directory that is renamed into place, so concurrent callers (pytest-xdist,
    ``datasets.map(num_proc=...)``) never see a half-written model. Smoke-test model: meaningless text.
    """
    _family_check(family)
    root = _cache_root() / "models"
    target = root / f"{family}-{_cache_key(family, head_dim, seed, kwargs)}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    try:
        build_tiny_qwen(family, tmp, head_dim=head_dim, seed=seed, **kwargs)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race only if the winner finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built tiny %s model in %s", family, target)
    return target
