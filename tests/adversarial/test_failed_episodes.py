"""Failed episodes never cost annotations: no write or push when all failed, previous rows kept, validate says so."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _b_helpers as h  # noqa: E402

from lerobot_keyframes.annotate import run_annotation  # noqa: E402
from lerobot_keyframes.annotate.config import AnnotateConfig, InterjectionsConfig, PlanConfig  # noqa: E402
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers, prompt_text  # noqa: E402
from lerobot_keyframes.vlm.config import VlmConfig  # noqa: E402

pytest_plugins = ("hub_fixtures",)
VLM = VlmConfig(backend="openai", model_id="model-A")


def _config(root: Path, out: Path | None, **kw) -> AnnotateConfig:
    return AnnotateConfig(root=root, out=out, plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
                          interjections=InterjectionsConfig(interjection_min_t=0.1), **kw)


def failing(tasks: list[str]):
    """Answers plausibly, except a wrong shape for every prompt about one of `tasks`."""
    def respond(conversation, schema):
        text = prompt_text(conversation)
        if any(t in text for t in tasks):
            return {"nonsense": True}
        return plausible_answers(conversation, schema)
    return respond


@pytest.fixture(scope="module")
def annotated(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("failed") / "annotated"
    assert run_annotation(_config(sample_root, out), VLM, vlm=ScriptedBackend(plausible_answers)).validation.ok
    return out


def test_run_where_every_episode_failed_writes_nothing(sample_root: Path, annotated: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    import shutil

    shutil.copytree(annotated, out)
    before = h.file_hashes(out)
    tasks = list(h.episode_tasks(sample_root).values())
    result = run_annotation(_config(sample_root, out, force=True), VLM, vlm=ScriptedBackend(failing(tasks)))
    assert sorted(result.failures) == [0, 1]
    assert not result.validation.ok and "all_episodes_failed" in result.validation.rules()
    assert h.file_hashes(out) == before  # not one byte of the earlier annotation changed


def test_failed_episode_keeps_its_rows_and_validate_warns(sample_root: Path, annotated: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(annotated, out)
    old = h.rows_by_episode(out)
    task1 = h.episode_tasks(sample_root)[1]
    result = run_annotation(_config(sample_root, out, seed=5), VLM, vlm=ScriptedBackend(failing([task1])))
    assert list(result.failures) == [1] and "episode 1" in result.failures[1]
    assert h.rows_by_episode(out)[1] == old[1]  # the failed episode kept every row it had
    prov = h.provenance(out)
    assert list(prov["failed_episodes"]) == ["1"]
    from lerobot_keyframes.language import validate_dataset

    report = validate_dataset(out)
    assert report.ok and "annotation_failed_kept" in report.rules("warning")
    # a later run that annotates it clears the record
    again = run_annotation(_config(sample_root, out, seed=5, only_episodes=(1,)), VLM,
                           vlm=ScriptedBackend(plausible_answers))
    assert again.failures == {} and h.provenance(out)["failed_episodes"] == {}


def test_failed_episode_without_rows_fails_validate(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    task1 = h.episode_tasks(sample_root)[1]
    result = run_annotation(_config(sample_root, out), VLM, vlm=ScriptedBackend(failing([task1])))
    assert list(result.failures) == [1]
    assert h.rows_by_episode(out)[1] == []
    proc = h.run_cli([sys.executable, "-m", "lerobot_keyframes.cli", "validate", str(out)])
    assert proc.returncode == 1, proc.stdout
    assert "annotation_failed" in proc.stdout and "episode 1 failed" in proc.stdout


def test_push_into_an_annotated_repo_never_loses_its_rows(local_hub, sample_root: Path, annotated: Path,
                                                          tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    from lerobot_keyframes.hub.errors import HubError
    from lerobot_keyframes.hub.push import push_dataset

    repo = "tester/annotated"
    push_dataset(annotated, repo, private=True)
    api = HfApi()

    def state():
        refs = api.list_repo_refs(repo, repo_type="dataset")
        return api.dataset_info(repo).sha, {t.name: t.target_commit for t in refs.tags}

    before = state()
    tasks = h.episode_tasks(sample_root)
    # every episode fails: no write, no push, the repo and its v3.0 tag stay
    result = run_annotation(_config(sample_root, tmp_path / "all", new_repo_id=repo, push_to_hub=True), VLM,
                            vlm=ScriptedBackend(failing(list(tasks.values()))))
    assert sorted(result.failures) == [0, 1] and result.push is None
    assert state() == before
    # one episode fails: its rows on the Hub would be lost, so the push is refused
    with pytest.raises(HubError, match=r"refusing to push .*episode 1: \d+ -> 0"):
        run_annotation(_config(sample_root, tmp_path / "one", new_repo_id=repo, push_to_hub=True), VLM,
                       vlm=ScriptedBackend(failing([tasks[1]])))
    assert state() == before
