"""The README's main job: the whole pipeline, offline, on the embedded sample dataset with a tiny model.

1. generate (or reuse) the sample dataset; 2. read it into the episode table; 3. decode exact
keyframes with `KeyframeTransform` through `datasets.map`; 4. annotate every episode with a tiny
random-weight Qwen2.5-VL through the transformers backend, structured output enforced; 5. validate
and write lerobot's language columns into a new root; 6. validate that root again from disk.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

logger = logging.getLogger(__name__)

REAL_MODEL_COMMAND = (
    "lerobot-keyframes annotate --root {root} --out {out_real} \\\n"
    "    --vlm.backend=vllm --vlm.model_id=Qwen/Qwen2.5-VL-7B-Instruct --vlm.max_new_tokens=1024"
)


def run_demo(out: Path, *, episodes: int = 4) -> int:
    from .annotate import (
        AnnotateConfig,
        AnnotationKeyframes,
        Annotator,
        InterjectionsConfig,
        PlanConfig,
        VqaConfig,
        write_annotations,
    )
    from .dataset import load_episodes
    from .dataset.summary import format_summary, summarize
    from .language import validate_dataset
    from .testing.sample import default_sample_dataset
    from .testing.tiny_qwen import tiny_qwen_cached
    from .vlm import VlmConfig

    out = Path(out).absolute()
    root = default_sample_dataset(episodes=episodes)
    print(f"[1/6] sample dataset: {root}")
    print(format_summary(summarize(root)))

    table = load_episodes(root)
    print(f"[2/6] episode table: {table.num_rows} episodes, {sum(table['length'])} frames")

    annotated = out / "annotated"
    for stale in (annotated, annotated.with_name(annotated.name + ".staging")):
        shutil.rmtree(stale, ignore_errors=True)
    config = AnnotateConfig(
        root=root, out=annotated, seed=0,
        plan=PlanConfig(n_task_rephrasings=2, frames_per_second=2.0, min_subtask_seconds=1.0,
                        keyframe_policy="motion+fps"),
        interjections=InterjectionsConfig(max_interjections_per_episode=1),
        vqa=VqaConfig(vqa_emission_hz=1.0),
    )
    # the frames the annotation modules declare (gripper/pause keyframes + 2 Hz for the plan, VQA ticks), decoded
    # once by a datasets.map and annotated from those rows by a second one
    started = time.perf_counter()
    transform = AnnotationKeyframes.for_annotation(table, config)
    keyframes = table.map(transform, batched=True, batch_size=2, features=transform.features(table.features))
    cams = [c for c in keyframes.column_names if c.startswith("keyframe_timestamps.")]
    counts = {c.split(".", 1)[1]: sum(len(v) for v in keyframes[c]) for c in cams}
    print(f"[3/6] keyframes decoded per camera (datasets.map): {counts}")
    out.mkdir(parents=True, exist_ok=True)
    keyframes.to_parquet(str(out / "keyframes.parquet"))

    model = tiny_qwen_cached("qwen2_5_vl")
    print(f"[4/6] annotating those rows (datasets.map) with a tiny random-weight Qwen2.5-VL ({model});")
    print("      its text is meaningless, but structured output keeps every answer valid JSON of the right shape")
    vlm = VlmConfig(backend="transformers", model_id=str(model), max_new_tokens=512, temperature=0.0)
    annotator = Annotator(config, vlm, progress=True)
    rows = keyframes.map(annotator, batched=True, batch_size=table.num_rows, with_rank=True,
                         features=annotator.features(keyframes.features))
    result = write_annotations(rows, config, vlm, started=started)
    print(result.summary())

    report = validate_dataset(annotated)
    print(f"[5/6] validation of the written dataset: {report.summary()}")
    print(f"[6/6] annotated dataset: {annotated}")
    print(f"      keyframes: {out / 'keyframes.parquet'}")
    print("\nReal annotations need a real Qwen-VL model (a GPU helps), for example:\n")
    print(REAL_MODEL_COMMAND.format(root=root, out_real=out / "annotated-real"))
    return 0 if report.ok and not result.failures else 1
