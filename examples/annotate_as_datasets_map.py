"""Annotation as a `datasets` dataflow: keyframes with one `map`, the model with another, then the writer.

    python examples/annotate_as_datasets_map.py OUT_DIR

The keyframe `map` decodes exactly the frames the annotation modules declare (lossless), so it can run on
CPU workers ahead of the GPU (`num_proc`); the `Annotator` `map` runs many episodes per batch through one
in-process engine (here a tiny random-weight Qwen2.5-VL: the text is meaningless, the format is exact).
With several GPUs, `num_proc=n_gpus` and `with_rank=True` give each worker its own `cuda:<rank>` model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lerobot_keyframes as lk
from lerobot_keyframes.annotate import (
                AnnotateConfig,
                AnnotationKeyframes,
                Annotator,
                PlanConfig,
                write_annotations,
)
from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import VlmConfig

out = Path(sys.argv[1] if len(sys.argv) > 1 else "annotated-sample")
root = lk.default_sample_dataset(episodes=2)
config = AnnotateConfig(root=root, out=out, plan=PlanConfig(n_task_rephrasings=1))
vlm_config = VlmConfig(backend="transformers", model_id=str(tiny_qwen_cached("qwen2_5_vl")), max_new_tokens=512,
                       batch_size=16)

episodes = lk.load_episodes(root)
keyframes = AnnotationKeyframes.for_annotation(episodes, config)
with_frames = episodes.map(keyframes, batched=True, batch_size=2, features=keyframes.features(episodes.features))
annotator = Annotator(config, vlm_config)
annotated = with_frames.map(annotator, batched=True, batch_size=8, with_rank=True,
                            features=annotator.features(with_frames.features))
print(annotated.select_columns(["episode_index", "annotation_error", "annotation_stats"]).to_pandas())
result = write_annotations(annotated, config, vlm_config)
print(result.summary())
