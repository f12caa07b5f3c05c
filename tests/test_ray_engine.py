"""The Ray Data engine on a local Ray instance (2 CPUs, one per module): same rows as the local engine,
an actor killed mid-run loses and duplicates nothing, a re-run resumes from staging."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from lerobot_keyframes.annotate import run_annotation
from lerobot_keyframes.annotate.config import (
    AnnotateConfig,
    ExecutorConfig,
    InterjectionsConfig,
    PlanConfig,
    RayConfig,
    VqaConfig,
)
from lerobot_keyframes.language import read_dataset_annotations
from lerobot_keyframes.testing.scripted import ScriptedBackend
from lerobot_keyframes.testing.scripted import plausible_answers as oracle
from lerobot_keyframes.vlm.config import VlmConfig

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
SCRIPTED = VlmConfig(backend="openai", model_id="scripted-qwen2.5-vl")


class CrashOnce:
    """A responder that kills its actor's process once, after `after` calls (a marker file makes it once)."""

    def __init__(self, marker: Path, after: int) -> None:
        self.marker, self.after, self.calls = marker, after, 0

    def __call__(self, conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
        self.calls += 1
        if self.calls > self.after and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os._exit(1)  # the actor dies mid-episode, mid-batch
        return oracle(conversation, schema)


def scripted_factory(responder: Any = oracle) -> Any:
    return lambda: ScriptedBackend(responder)


def _config(root: Path, out: Path, **kw: Any) -> AnnotateConfig:
    return AnnotateConfig(root=root, out=out, plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
                          interjections=InterjectionsConfig(interjection_min_t=0.1), **kw)


def _annotations(root: Path) -> dict:
    return read_dataset_annotations(root)[0]


# -- without a Ray instance ---------------------------------------------------------------------------
def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from lerobot_keyframes.annotate.executors import ray as ray_engine

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'lerobot_keyframes[ray]'")):
        ray_engine.import_ray()


def test_cli_flags_and_no_ray_import_unless_chosen() -> None:
    code = (
        "import sys\n"
        "from lerobot_keyframes.cli import annotate_configs_from_args, build_parser\n"
        "args = build_parser().parse_args(['annotate', '--root', '/x', '--executor.engine=ray', '--ray.address',"
        " 'auto', '--ray.num_vlm_actors', '3', '--ray.num_gpus_per_actor', '0.5', '--ray.cpu_workers', '4'])\n"
        "config, vlm = annotate_configs_from_args(args)\n"
        "import lerobot_keyframes.annotate.executors.ray\n"
        "print(config.executor.engine, config.ray.address, config.ray.num_vlm_actors, config.ray.num_gpus_per_actor,"
        " config.ray.cpu_workers, 'ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ray", "auto", "3", "0.5", "4", "False"]
    with pytest.raises(ValueError, match="executor.engine"):
        AnnotateConfig(root=Path("/x"), executor=ExecutorConfig(engine="spark"))


# -- on one local Ray instance --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray = pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="rk_ray_", dir="/tmp")  # short: Ray's unix sockets live under it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1", _temp_dir=temp)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


RAY_KW: dict[str, Any] = {"cpu_workers": 1, "num_cpus_per_actor": 0.5}


@pytest.mark.slow
def test_ray_output_equals_local_with_the_tiny_model(local_ray: Any, sample_root: Path, tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.executors.ray import run_annotation_ray
    from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached

    vlm = VlmConfig(backend="transformers", model_id=str(tiny_qwen_cached("qwen2_5_vl")), max_new_tokens=512,
                    temperature=0.0, seed=0)
    small = {"seed": 0, "only_episodes": (1,), "vqa": VqaConfig(vqa_emission_hz=0.5)}  # few model calls
    local = run_annotation(_config(sample_root, tmp_path / "local", **small), vlm)
    distributed = run_annotation_ray(_config(sample_root, tmp_path / "ray", **small), vlm, **RAY_KW)
    assert distributed.failures == local.failures
    assert distributed.rows_per_style == local.rows_per_style
    assert distributed.stats.calls == local.stats.calls > 0
    assert distributed.modules_run == local.modules_run
    assert local.failures == {} and distributed.validation.ok, distributed.validation.format()
    assert _annotations(tmp_path / "ray") == _annotations(tmp_path / "local")
    for e in local.episodes:  # staged rows (and their keys) are the same, row for row
        assert (tmp_path / "ray.staging" / f"episode-{e:06d}").is_dir()
        for path in sorted((tmp_path / "local.staging" / f"episode-{e:06d}").glob("*.jsonl")):
            assert (tmp_path / "ray.staging" / path.relative_to(tmp_path / "local.staging")).read_text() == path.read_text()


@pytest.fixture(scope="module")
def four_episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("four") / "ds", episodes=4, episode_seconds=1.0)


@pytest.mark.slow
def test_a_killed_vlm_actor_loses_and_duplicates_nothing(local_ray: Any, four_episodes: Path, tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.executors.ray import run_annotation_ray

    reference = run_annotation(_config(four_episodes, tmp_path / "local"), SCRIPTED, vlm=ScriptedBackend(oracle))
    assert reference.failures == {}

    marker = tmp_path / "crashed"
    cfg = _config(four_episodes, tmp_path / "ray", executor=ExecutorConfig(episode_parallelism=1))
    result = run_annotation_ray(cfg, SCRIPTED, num_vlm_actors=2, vlm_factory=scripted_factory(CrashOnce(marker, 5)),
                                **RAY_KW)
    assert marker.exists()  # an actor did die
    assert result.failures == {} and result.validation.ok
    for module in ("plan", "interjections", "vqa"):  # every module of every episode: run or reused once
        assert result.modules_run[module] + result.modules_reused[module] == 4
    assert _annotations(tmp_path / "ray") == _annotations(tmp_path / "local")


@pytest.mark.slow
def test_resume_after_an_interrupted_driver_skips_finished_work(local_ray: Any, sample_root: Path,
                                                                tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.executors.ray import run_annotation_ray

    out = tmp_path / "out"
    first = run_annotation_ray(_config(sample_root, out), SCRIPTED, vlm_factory=scripted_factory(), **RAY_KW)
    assert first.failures == {} and first.stats.calls > 0
    before = _annotations(out)

    # the driver died before episode 1's VQA was staged: only that module runs again
    (tmp_path / "out.staging" / "episode-000001" / "vqa.jsonl").unlink()
    again = run_annotation_ray(_config(sample_root, out), SCRIPTED, vlm_factory=scripted_factory(), **RAY_KW)
    assert dict(again.modules_run) == {"vqa": 1}
    assert dict(again.modules_reused) == {"plan": 2, "interjections": 2, "vqa": 1}
    assert 0 < again.stats.calls < first.stats.calls
    assert _annotations(out) == before

    # everything staged: no episode goes to Ray, no model call; the local engine agrees with the staging
    via_config = _config(sample_root, out, executor=ExecutorConfig(engine="ray"),
                         ray=RayConfig(cpu_workers=1, num_cpus_per_actor=0.5))
    done = run_annotation(via_config, SCRIPTED, vlm=ScriptedBackend(oracle))  # dispatches to the Ray engine
    assert done.stats.calls == 0 and not done.modules_run and sum(done.modules_reused.values()) == 6
    backend = ScriptedBackend(oracle)
    run_annotation(_config(sample_root, out), SCRIPTED, vlm=backend)
    assert backend.calls == 0 and _annotations(out) == before


@pytest.mark.slow
def test_quality_checks_run_before_ray_and_skip_bad_episodes(local_ray: Any, tmp_path: Path) -> None:
    """The same checks as the local engine, on the driver: a black camera episode is reported, and under
    --quality.skip_bad_episodes it is skipped (not failed) and never reaches a Ray actor."""
    import numpy as np
    from test_quality import _rewrite, _video

    from lerobot_keyframes.annotate.config import QualityConfig
    from lerobot_keyframes.annotate.executors.ray import run_annotation_ray
    from lerobot_keyframes.dataset import load_episodes
    from lerobot_keyframes.testing.sample import make_sample_dataset

    root = make_sample_dataset(tmp_path / "ds", episodes=3, cameras=("front",), width=64, height=48, codec="h264",
                               episode_seconds=1.0)
    _rewrite(_video(root), load_episodes(root).to_list(), lambda e, k, rgb: np.zeros_like(rgb) if e == 1 else rgb)
    small = {"interjections": InterjectionsConfig(enabled=False), "vqa": VqaConfig(enabled=False),
             "plan": PlanConfig(n_task_rephrasings=0, subtask_describe_first=False, min_subtask_seconds=0.2)}
    kept = run_annotation_ray(AnnotateConfig(root=root, out=tmp_path / "a", **small), SCRIPTED,
                              vlm_factory=scripted_factory(), **RAY_KW)
    assert kept.failures == {} and kept.skipped == {} and list(kept.quality) == [1]
    assert [f.kind for f in kept.quality[1]] == ["black_camera"]
    assert kept.modules_run["plan"] == 3
    skipped = run_annotation_ray(
        AnnotateConfig(root=root, out=tmp_path / "b", quality=QualityConfig(skip_bad_episodes=True), **small),
        SCRIPTED, vlm_factory=scripted_factory(), **RAY_KW)
    assert skipped.failures == {} and list(skipped.skipped) == [1] and "skip_bad_episodes" in skipped.skipped[1]
    assert skipped.modules_run["plan"] == 2 and skipped.validation.ok, skipped.validation.format()
    assert "skipped episode 1" in skipped.summary()
    assert not (tmp_path / "b.staging" / "episode-000001").exists()  # no actor ever worked on it
    anns = _annotations(tmp_path / "b")
    assert sorted(e for e, a in anns.items() if not a.empty) == [0, 2]
    provenance = json.loads((tmp_path / "b" / "meta" / "annotation_provenance.json").read_text())
    assert provenance["quality"]["1"][0]["kind"] == "black_camera" and list(provenance["skipped_episodes"]) == ["1"]


def test_stages_without_ray_decode_once_and_stage_like_the_local_engine(sample_root: Path, tmp_path: Path) -> None:
    """The two stage functions called in-process: the frames the modules declared come from the CPU stage
    (the keyframe stage, as keyframe columns on the rows) and are never decoded again in the actor."""
    import pickle

    from lerobot_keyframes.annotate.executors.ray import AnnotateEpisodes, decode_batch, prefetch_requests
    from lerobot_keyframes.annotate.run.prepare import prepare_run

    cfg = _config(sample_root, tmp_path / "out")
    run = prepare_run(cfg, SCRIPTED, check_backend=False)
    batch = {"episode": [pickle.dumps(r) for r in run.rows]}
    from lerobot_keyframes.transform import timestamp_column

    decoded = decode_batch(batch, run.plan, SCRIPTED)
    requests = [prefetch_requests(r, cfg, SCRIPTED) for r in run.rows]
    assert [len(r) for r in requests] == [2, 2]  # front: plan + its VQA turns; wrist: its VQA turns
    for blob, wanted in zip(decoded["episode"], requests):
        row = pickle.loads(blob)
        assert [(cam, tuple(row[timestamp_column(cam)])) for cam, _ in wanted] == wanted

    stage = AnnotateEpisodes(run.plan, SCRIPTED, scripted_factory())
    outcomes = [pickle.loads(b) for b in stage(decoded)["outcome"]]
    assert [o.error for o in outcomes] == [None, None]
    for o, wanted in zip(outcomes, requests):
        assert o.frames.from_row == sum(len(times) for _, times in wanted)  # every prefetched frame served
        assert o.frames.decoded <= cfg.interjections.interjection_window_frames  # only cue windows, if new
    assert all(o.modules_run == {"plan": 1, "interjections": 1, "vqa": 1} for o in outcomes)
    assert all([s.module for s in o.staged] == ["plan", "interjections", "vqa"] for o in outcomes)

    reference = tmp_path / "local"
    run_annotation(_config(sample_root, reference), SCRIPTED, vlm=ScriptedBackend(oracle))
    for path in sorted((tmp_path / "local.staging").rglob("*.jsonl")):
        assert (run.staging.dir / path.relative_to(tmp_path / "local.staging")).read_text() == path.read_text()
