"""`--vqa.K` > 1 output (K consecutive frames per tick, cameras taking turns) loads, resolves and
passes lerobot 0.6.1's own staging validator."""

from __future__ import annotations

import functools
from pathlib import Path

from lerobot_keyframes.annotate import AnnotateConfig, PlanConfig, run_annotation
from lerobot_keyframes.annotate.config import VqaConfig
from lerobot_keyframes.language import LANGUAGE_EVENTS, LANGUAGE_PERSISTENT, read_dataset_annotations
from lerobot_keyframes.testing.sample import make_sample_dataset
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers
from lerobot_keyframes.vlm.config import VlmConfig

_oracle = functools.partial(plausible_answers, subtasks=("reach for the cube", "place the cube"))


def test_vqa_k_output_passes_lerobots_validator_and_resolves(tmp_path: Path) -> None:
    from lerobot.annotations.steerable_pipeline.reader import iter_episodes
    from lerobot.annotations.steerable_pipeline.staging import EpisodeStaging
    from lerobot.annotations.steerable_pipeline.validator import StagingValidator
    from lerobot.datasets import language_render as lr
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    source = make_sample_dataset(tmp_path / "src", episodes=2, episode_seconds=2.0, width=160, height=120)
    config = AnnotateConfig(root=source, out=tmp_path / "out", plan=PlanConfig(n_task_rephrasings=2),
                            vqa=VqaConfig(K=3))
    result = run_annotation(config, VlmConfig(backend="openai", model_id="scripted"), vlm=ScriptedBackend(_oracle))
    assert not result.failures and result.validation.ok, result.summary()
    out = tmp_path / "out"
    stored, _ = read_dataset_annotations(out)
    staging = tmp_path / "staging"
    for e, ann in stored.items():
        EpisodeStaging(staging, e).write("vqa", [r.to_dict() for r in ann.events if r.style == "vqa"])
    cameras = tuple(sorted({r.camera for a in stored.values() for r in a.events if r.camera}))
    report = StagingValidator(dataset_camera_keys=cameras).validate(list(iter_episodes(out)), staging)
    assert report.ok, report.errors
    ds = LeRobotDataset("local/vqa-k", root=out)
    answered = 0
    for i in range(len(ds)):
        item = ds[i]
        t, p, e = float(item["timestamp"]), item[LANGUAGE_PERSISTENT], item[LANGUAGE_EVENTS]
        for cam in cameras:
            answered += lr.emitted_at(t, persistent=p, events=e, style="vqa", role="assistant", camera=cam) is not None
        lr.emitted_at(t, persistent=p, events=e, style="vqa", role="user")  # one camera per frame: not ambiguous
    assert answered == result.rows_per_style["vqa"] // 2 >= 2 * 3 * 2  # >= 2 ticks x K=3 x 2 episodes
