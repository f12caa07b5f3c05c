"""Annotate the sample dataset end to end with a tiny offline Qwen2.5-VL (random weights: the text is
meaningless, the format is exact) and read the language rows back.

    python examples/annotate_with_tiny_model.py OUT_DIR

For real annotations use a real model, e.g. `VlmConfig(backend="vllm", model_id="Qwen/Qwen2.5-VL-7B-Instruct")`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lerobot_keyframes as lk
from lerobot_keyframes.annotate import AnnotateConfig, PlanConfig, VqaConfig, run_annotation
from lerobot_keyframes.language import read_dataset_annotations
from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import VlmConfig

out = Path(sys.argv[1] if len(sys.argv) > 1 else "annotated-sample")
root = lk.default_sample_dataset(episodes=2)
config = AnnotateConfig(root=root, out=out, only_episodes=(0, 1), plan=PlanConfig(n_task_rephrasings=2),
                        vqa=VqaConfig(vqa_emission_hz=0.5))
vlm_config = VlmConfig(backend="transformers", model_id=str(tiny_qwen_cached("qwen2_5_vl")), max_new_tokens=512)
result = run_annotation(config, vlm_config)
print(result.summary())
annotations, _ = read_dataset_annotations(out)
for row in annotations[0].persistent[:4]:
    print(f"t={row.timestamp:.3f} {row.style}: {row.content!r}")
