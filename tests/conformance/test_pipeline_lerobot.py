"""The annotate pipeline's own output (not hand-made rows) loads and resolves in lerobot 0.6.1."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from lerobot_keyframes.annotate import AnnotateConfig, MotionConfig, PlanConfig, run_annotation
from lerobot_keyframes.language import LANGUAGE_EVENTS, LANGUAGE_PERSISTENT, read_dataset_annotations
from lerobot_keyframes.testing.sample import make_sample_dataset
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers
from lerobot_keyframes.vlm.config import VlmConfig

_oracle = functools.partial(
    plausible_answers, subtasks=("reach for the cube", "carry the cube to the pad", "release the cube")
)


@pytest.fixture(scope="module", params=["av1", "h264"])
def pipeline_output(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp(f"pipeline-{request.param}")
    source = make_sample_dataset(tmp / "src", episodes=3, episode_seconds=3.0, codec=request.param,
                                 max_video_file_mb=0.02, episodes_per_data_file=2)
    config = AnnotateConfig(root=source, out=tmp / "out", plan=PlanConfig(n_task_rephrasings=2),
                            motion=MotionConfig(enabled=True))
    result = run_annotation(config, VlmConfig(backend="openai", model_id="scripted"), vlm=ScriptedBackend(_oracle))
    assert not result.failures and result.validation.ok, result.summary()
    assert result.rows_per_style.get("interjection", 0) > 0 and result.rows_per_style.get("motion", 0) > 0
    return tmp / "out"


def test_lerobot_loads_pipeline_output_and_resolves_every_binding(pipeline_output: Path) -> None:
    from lerobot.configs.recipe import DEFAULT_BINDINGS
    from lerobot.datasets import language_render as lr
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/pipeline", root=pipeline_output)
    stored, _ = read_dataset_annotations(pipeline_output)
    assert ds.num_episodes == len(stored) == 3
    for i in range(len(ds)):
        item = ds[i]
        t = float(item["timestamp"])
        p, e = item[LANGUAGE_PERSISTENT], item[LANGUAGE_EVENTS]
        assert lr.active_at(t, persistent=p, style="subtask") is not None
        for style in ("subtask", "plan", "memory", "motion"):
            lr.emitted_at(t, persistent=p, events=e, style=style)
        for _name, spec in DEFAULT_BINDINGS.items():
            lr._resolve_spec(spec, persistent=p, events=e, t=t)  # never "Ambiguous" with rotated VQA cameras
