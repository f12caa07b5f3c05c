"""The annotate pipeline against the local Hub: pull a dataset, annotate, push; sharded runs + merge; the hub script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_annotate_pipeline import oracle

from lerobot_keyframes.annotate import AnnotateConfig, MotionConfig, PlanConfig, VqaConfig, run_annotation
from lerobot_keyframes.annotate.executors.jobs import SHARD_ENV, MergeConfig, plan_shards, run_merge
from lerobot_keyframes.hub.push import push_dataset
from lerobot_keyframes.language import read_dataset_annotations
from lerobot_keyframes.testing.scripted import ScriptedBackend
from lerobot_keyframes.vlm.config import VlmConfig

pytest_plugins = ("hub_fixtures",)

SOURCE = "tester/sample"
VLM = VlmConfig(backend="openai", model_id="scripted-qwen2.5-vl")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub_source(local_hub, sample_root: Path) -> str:
    push_dataset(sample_root, SOURCE, private=True)
    return SOURCE


def _config(tmp: Path, name: str, **kw) -> AnnotateConfig:
    return AnnotateConfig(repo_id=SOURCE, out=tmp / name, plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
                          **kw)


def test_annotate_from_hub_and_push(local_hub, hub_source: str, tmp_path: Path) -> None:
    source_commits = len(local_hub.commits(SOURCE))
    cfg = _config(tmp_path, "out", new_repo_id="tester/annotated", push_to_hub=True,
                  push_commit_message="Annotate with the scripted model")  # lerobot-annotate's flag
    result = run_annotation(cfg, VLM, vlm=ScriptedBackend(oracle))
    assert result.validation.ok and result.push is not None
    assert "Annotate with the scripted model" in [c.title for c in local_hub.commits("tester/annotated")]
    files = set(local_hub_files(local_hub, "tester/annotated"))
    assert "data/chunk-000/file-000.parquet" in files and "meta/info.json" in files
    assert any(f.startswith("videos/") for f in files)  # videos fetched from the source and pushed along
    assert not any("staging" in f for f in files)
    card = local_hub.read_file("tester/annotated", "README.md").decode()
    assert VLM.model_id in card
    from huggingface_hub import HfApi

    refs = HfApi().list_repo_refs("tester/annotated", repo_type="dataset")
    head = HfApi().dataset_info("tester/annotated").sha
    assert {t.name: t.target_commit for t in refs.tags}["v3.0"] == head
    assert HfApi().dataset_info("tester/annotated").private  # the source is private: so is the copy
    assert len(local_hub.commits(SOURCE)) == source_commits  # the source repo is untouched


def local_hub_files(local_hub, repo_id: str) -> list[str]:
    from huggingface_hub import HfApi

    return HfApi().list_repo_files(repo_id, repo_type="dataset")


def test_three_shards_plus_merge_equal_the_unsharded_run(local_hub, hub_source: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    whole = run_annotation(_config(tmp_path, "whole"), VLM, vlm=ScriptedBackend(oracle))
    assert whole.validation.ok
    expected, _ = read_dataset_annotations(tmp_path / "whole")

    lengths = {0: 60, 1: 60}
    shards = plan_shards(lengths, 3)
    branches = []
    for shard in shards:
        if not shard.episodes:
            continue
        branch = f"shards/run/{shard.index}"
        monkeypatch.setenv(SHARD_ENV, f"{shard.index}/{len(shards)}")
        cfg = _config(tmp_path, f"shard{shard.index}", only_episodes=tuple(shard.episodes), new_repo_id="tester/work",
                      push_to_hub=True, push_branch=branch, push_staging_only=True)
        result = run_annotation(cfg, VLM, vlm=ScriptedBackend(oracle))
        assert result.push and not (tmp_path / f"shard{shard.index}").exists()  # no dataset written by a shard
        branches.append(branch)
    outcome = run_merge(MergeConfig(repo_id=SOURCE, work_repo_id="tester/work", new_repo_id="tester/merged",
                                    branches=tuple(branches), out=tmp_path / "merged"))
    assert outcome["validation"].ok and outcome["push"] is not None
    merged, _ = read_dataset_annotations(tmp_path / "merged")
    assert merged == expected  # row for row


def test_merge_writes_with_the_modules_the_shards_ran(local_hub, sample_root: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards that ran motion (off by default) and not VQA, over a source that already has rows of both: the merge
    replaces the motion rows and keeps the VQA rows, as the unsharded run does (the shards' markers carry their
    run record; without it the merge took the default modules and lost the VQA rows, kept the old motion rows)."""
    labelled = run_annotation(AnnotateConfig(root=sample_root, out=tmp_path / "labelled",
                                             motion=MotionConfig(enabled=True)), VLM, vlm=ScriptedBackend(oracle))
    assert labelled.validation.ok and {"vqa", "motion"} <= set(labelled.rows_per_style)
    push_dataset(tmp_path / "labelled", "tester/labelled", private=True)
    modules = {"vqa": VqaConfig(enabled=False), "motion": MotionConfig(enabled=True, gripper_index=0)}
    whole = run_annotation(AnnotateConfig(repo_id="tester/labelled", out=tmp_path / "whole", **modules), VLM,
                           vlm=ScriptedBackend(oracle))
    assert whole.validation.ok and whole.rows_kept.get("vqa") and whole.rows_replaced.get("motion")
    branches = []
    for shard, episodes in enumerate(((0,), (1,))):
        branches.append(f"shards/run/{shard}")
        monkeypatch.setenv(SHARD_ENV, f"{shard}/2")
        result = run_annotation(AnnotateConfig(repo_id="tester/labelled", out=tmp_path / f"shard{shard}",
                                               only_episodes=episodes, new_repo_id="tester/work", push_to_hub=True,
                                               push_branch=branches[-1], push_staging_only=True, **modules),
                                VLM, vlm=ScriptedBackend(oracle))
        assert result.push
    outcome = run_merge(MergeConfig(repo_id="tester/labelled", work_repo_id="tester/work", branches=tuple(branches),
                                    out=tmp_path / "merged", push_to_hub=False))
    assert outcome["validation"].ok
    assert read_dataset_annotations(tmp_path / "merged")[0] == read_dataset_annotations(tmp_path / "whole")[0]


def test_hub_script_end_to_end_with_the_tiny_model(local_hub, hub_source: str, hub_env: dict[str, str],
                                                   tmp_path: Path) -> None:
    from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached

    model = tiny_qwen_cached("qwen2_5_vl")
    env = {**os.environ, **hub_env, "HF_HUB_OFFLINE": "0"}
    args = [sys.executable, str(REPO / "hub_scripts/annotate.py"), f"--repo_id={SOURCE}",
            "--new_repo_id=tester/tiny-annotated", "--push_to_hub=true", f"--out={tmp_path / 'out'}",
            "--vlm.backend=transformers", f"--vlm.model_id={model}", "--vlm.max_new_tokens=384",
            "--plan.n_task_rephrasings=1", "--vqa.vqa_emission_hz=0.5", "--only_episodes=0"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "pushed" in proc.stdout
    assert hub_env["HF_TOKEN"] not in proc.stdout + proc.stderr  # tokens are never printed
    files = local_hub_files(local_hub, "tester/tiny-annotated")
    assert "data/chunk-000/file-000.parquet" in files

