"""push_dataset against the local Hub: first push, one-commit re-push, resume after faults, tag, card, privacy."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from huggingface_hub import CommitOperationAdd, DatasetCard, HfApi

from lerobot_keyframes.cli import main as cli_main
from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.hub.card import PROVENANCE_START
from lerobot_keyframes.hub.errors import HubError
from lerobot_keyframes.hub.push import PushResult, push_dataset, source_visibility
from lerobot_keyframes.testing.local_hub import LocalHub, iter_repo_files

DATA = "data/chunk-000/file-000.parquet"
PROVENANCE = {
    "package_version": "0.1.0", "model_id": "Qwen/Qwen2.5-VL-3B-Instruct", "model_revision": "abc123",
    "backend": "vllm", "sampling": {"temperature": 0.0, "top_p": 1.0, "seed": 7, "max_new_tokens": 512},
    "prompt_hashes": {"plan_segment": "0123456789abcdef"}, "modules": ["plan", "interjections", "vqa"],
    "episodes": 2, "rows_per_style": {"subtask": 6, "plan": 6, "vqa": 8}, "validator": {"ok": True, "errors": []},
    "date": "2026-11-24T10:00:00Z", "job_id": "6a381ca1953ed90bfb947332",
}

pytest_plugins = ("hub_fixtures",)  # the local_hub fixture


@pytest.fixture
def root(sample_root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ds"
    shutil.copytree(sample_root, dst)
    (dst / ".lerobot_keyframes/staging/episode-000000").mkdir(parents=True)
    (dst / ".lerobot_keyframes/staging/episode-000000/plan.jsonl").write_text("{}\n")
    (dst / "meta/.info.json.x1y2.tmp").write_text("half-written")
    return dst


def _rewrite_data(root: Path) -> None:
    """Change one data file (as the language writer does) without touching anything else."""
    table = pq.read_table(root / DATA)
    pq.write_table(table.replace_schema_metadata({b"lerobot_keyframes": b"rewritten"}), root / DATA)


def test_first_push_uploads_the_folder_without_staging_and_caches(local_hub: LocalHub, root: Path) -> None:
    result = push_dataset(root, "tester/annotated", provenance=PROVENANCE)
    assert isinstance(result, PushResult) and result.first_push and result.created and result.private is True
    files = set(iter_repo_files(local_hub, "tester/annotated"))
    expected = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    expected -= {".lerobot_keyframes/staging/episode-000000/plan.jsonl", "meta/.info.json.x1y2.tmp"}
    assert files == expected | {".gitattributes"}
    for rel in expected:
        assert local_hub.read_file("tester/annotated", rel) == (root / rel).read_bytes(), rel
    head = local_hub.commits("tester/annotated")[0]
    assert head.oid == result.commit_oid and local_hub.repo("tester/annotated").tags == {"v3.0": head.oid}
    # the mp4s and parquets went through LFS, the JSON metadata as regular files
    lfs = {p for p, e in head.files.items() if e.lfs_sha256}
    assert DATA in lfs and "videos/observation.images.front/chunk-000/file-000.mp4" in lfs
    assert "meta/info.json" not in lfs


def test_repush_commits_only_the_changed_file_and_moves_the_tag(local_hub: LocalHub, root: Path) -> None:
    first = push_dataset(root, "tester/annotated", provenance=PROVENANCE)
    uploads_before = local_hub.count("lfs_upload")
    _rewrite_data(root)
    second = push_dataset(root, "tester/annotated", provenance=PROVENANCE)
    assert not second.first_push and second.uploaded == (DATA,) and second.deleted == ()
    head = local_hub.commits("tester/annotated")[0]
    assert head.oid == second.commit_oid and head.parents == [first.commit_oid]
    assert head.added == [DATA] and head.deleted == []  # one commit, only the changed file
    assert local_hub.count("lfs_upload") == uploads_before + 1
    assert local_hub.repo("tester/annotated").tags == {"v3.0": second.commit_oid}
    assert HfApi().list_repo_refs("tester/annotated", repo_type="dataset").tags[0].target_commit == second.commit_oid

    # a stale file under data/ is deleted in the same single commit as an addition
    (root / "data/chunk-000/file-001.parquet").write_bytes((root / DATA).read_bytes())
    push_dataset(root, "tester/annotated", provenance=PROVENANCE)
    (root / "data/chunk-000/file-001.parquet").unlink()
    _rewrite_data(root)
    table = pq.read_table(root / DATA)
    pq.write_table(table.replace_schema_metadata({b"again": b"1"}), root / DATA)
    third = push_dataset(root, "tester/annotated", provenance=PROVENANCE)
    head = local_hub.commits("tester/annotated")[0]
    assert head.added == [DATA] and head.deleted == ["data/chunk-000/file-001.parquet"] == list(third.deleted)

    # nothing changed: no commit, tag already right
    n = len(local_hub.commits("tester/annotated"))
    again = push_dataset(root, "tester/annotated", provenance=PROVENANCE)
    assert not again.changed and again.commit_oid == third.commit_oid
    assert len(local_hub.commits("tester/annotated")) == n


def test_interrupted_pushes_complete_when_rerun(local_hub: LocalHub, root: Path, no_backoff_sleep: None) -> None:
    # 1. the connection drops mid-upload of one video, more often than huggingface_hub retries (1 + 5)
    video = root / "videos/observation.images.front/chunk-000/file-000.mp4"
    oid = hashlib.sha256(video.read_bytes()).hexdigest()
    local_hub.drop_next("lfs_upload", times=6, after_bytes=4096, match=oid)
    broke = r"the connection to the Hub at http://127\.0\.0\.1:\d+ broke \(RemoteProtocolError.*re-run the same command"
    with pytest.raises(HubError, match=broke) as exc:
        push_dataset(root, "tester/resume")
    assert "re-run" in str(exc.value)
    assert local_hub.commits("tester/resume")[0].title == "initial commit"  # nothing half-committed
    ok_first = {r.path for r in local_hub.requests if r.route == "lfs_upload" and r.status == 200}
    result = push_dataset(root, "tester/resume")
    assert result.first_push
    ok_all = [r.path for r in local_hub.requests if r.route == "lfs_upload" and r.status == 200]
    lfs_files = [p for p, e in local_hub.commits("tester/resume")[0].files.items() if e.lfs_sha256]
    assert len(ok_all) == len(set(ok_all)) == len(lfs_files)  # each object uploaded once overall
    assert set(ok_all) - ok_first == {r for r in ok_all if oid in r}  # the re-run sent only the missing video

    # 2. the commit fails with a server error: the re-run uploads nothing again and commits
    _rewrite_data(root)
    local_hub.fail_next("commit", status=500)
    uploads = local_hub.count("lfs_upload")
    with pytest.raises(HubError, match="server error") as exc:
        push_dataset(root, "tester/resume")
    assert exc.value.status == 500
    assert local_hub.count("lfs_upload") == uploads + 1
    resumed = push_dataset(root, "tester/resume")
    assert resumed.uploaded == (DATA,) and local_hub.count("lfs_upload") == uploads + 1

    # 3. the commit lands but the tag does not: the re-run only fixes the tag
    _rewrite_data(root)
    table = pq.read_table(root / DATA)
    pq.write_table(table.replace_schema_metadata({b"v": b"3"}), root / DATA)
    local_hub.fail_next("tag", status=503)
    with pytest.raises(HubError, match="recreating tag v3.0"):
        push_dataset(root, "tester/resume")
    landed = local_hub.commits("tester/resume")[0].oid
    assert local_hub.repo("tester/resume").tags["v3.0"] != landed
    fixed = push_dataset(root, "tester/resume")
    assert not fixed.changed and fixed.commit_oid == landed
    assert local_hub.repo("tester/resume").tags == {"v3.0": landed}


def test_concurrent_change_is_a_clean_conflict_and_a_rerun_succeeds(local_hub: LocalHub, root: Path) -> None:
    push_dataset(root, "tester/race")
    _rewrite_data(root)

    class RacingApi(HfApi):
        def create_commit(self, repo_id, operations, **kwargs):  # someone commits right before us
            HfApi().create_commit(repo_id, repo_type="dataset", commit_message="other writer",
                                  operations=[CommitOperationAdd("notes.txt", b"hi")])
            return super().create_commit(repo_id, operations, **kwargs)

    with pytest.raises(HubError, match="conflict") as exc:
        push_dataset(root, "tester/race", api=RacingApi())
    assert exc.value.status == 412
    result = push_dataset(root, "tester/race")
    assert result.uploaded == (DATA,)
    assert "notes.txt" in set(iter_repo_files(local_hub, "tester/race"))  # other writers' files are kept


def test_card_keeps_the_source_card_and_carries_provenance(local_hub: LocalHub, root: Path) -> None:
    source_card = ("---\nlicense: mit\ntags:\n- LeRobot\n- so100\n---\n# Pick and place\n\n"
                   "Collected by the lab on an SO-100 arm. Please cite our paper.\n")
    (root / "README.md").write_text(source_card)
    push_dataset(root, "tester/source", private=False)
    annotated_root = root.parent / "annotated"
    shutil.copytree(root, annotated_root)
    (annotated_root / "README.md").unlink()  # the card must come from the source repo
    push_dataset(annotated_root, "tester/annotated", source_repo_id="tester/source", provenance=PROVENANCE)

    card = DatasetCard.load("tester/annotated", repo_type="dataset")
    assert card.data.license == "mit"
    assert {"LeRobot", "so100", "lerobot-keyframes"} <= set(card.data.tags)
    assert card.data.task_categories == ["robotics"]
    assert card.data.configs[0] == {"config_name": "default", "data_files": "data/*/*.parquet"}
    assert "Collected by the lab on an SO-100 arm. Please cite our paper." in card.text
    assert "## Annotation provenance" in card.text
    for value in ("0.1.0", "Qwen/Qwen2.5-VL-3B-Instruct @ abc123", "vllm", "temperature=0.0", "plan_segment",
                  "plan, interjections, vqa", "| Episodes annotated | 2 |", "plan=6, subtask=6, vqa=8",
                  "passed", "2026-11-24T10:00:00Z", "6a381ca1953ed90bfb947332", "tester/source"):
        assert value in card.text, value

    # re-push with new provenance: the section is replaced, not duplicated; the source's text stays
    push_dataset(annotated_root, "tester/annotated", source_repo_id="tester/source",
                 provenance={**PROVENANCE, "model_revision": "def456", "job_id": None})
    text = local_hub.read_file("tester/annotated", "README.md").decode()
    assert text.count(PROVENANCE_START) == 1 and "def456" in text and "abc123" not in text
    assert "Please cite our paper." in text and (annotated_root / "README.md").read_text() == text


def test_private_by_default_and_never_public_from_a_private_source(local_hub: LocalHub, root: Path) -> None:
    assert push_dataset(root, "tester/default").private is True
    assert local_hub.repo("tester/default").private
    assert push_dataset(root, "tester/public-local", private=False).private is False

    push_dataset(root, "tester/private-src")
    with pytest.raises(HubError, match="refusing to make tester/copy public"):
        push_dataset(root, "tester/copy", source_repo_id="tester/private-src", private=False)
    assert not local_hub.has_repo("tester/copy")
    assert push_dataset(root, "tester/copy", source_repo_id="tester/private-src").private is True
    local_hub.create_repo("tester/public-target", private=False)
    with pytest.raises(HubError, match="it is public"):
        push_dataset(root, "tester/public-target", source_repo_id="tester/private-src")

    push_dataset(root, "tester/public-src", private=False)
    assert push_dataset(root, "tester/copy2", source_repo_id="tester/public-src", private=False).private is False
    assert push_dataset(root, "tester/copy3", source_repo_id="tester/public-src").private is True
    # an unknown source (missing, or invisible to this token) counts as private
    with pytest.raises(HubError, match="refusing to make tester/copy4 public"):
        push_dataset(root, "tester/copy4", source_repo_id="tester/does-not-exist", private=False)
    api = HfApi()
    assert [source_visibility(api, repo) for repo in ("tester/public-src", "tester/private-src",
                                                      "tester/does-not-exist", None)] == [
        "public", "private", "unknown", "unknown"]
    assert source_visibility(api, "tester/private-src", token=LocalHub.OTHER_TOKEN) == "unknown"  # invisible to them


def test_pushing_onto_the_source_needs_the_explicit_flag(local_hub: LocalHub, root: Path) -> None:
    push_dataset(root, "tester/src")
    with pytest.raises(HubError, match="allow_source_overwrite"):
        push_dataset(root, "tester/src", source_repo_id="tester/src")
    _rewrite_data(root)
    assert push_dataset(root, "tester/src", source_repo_id="tester/src", allow_source_overwrite=True).uploaded == (DATA,)


def test_snapshot_without_videos_is_completed_from_the_source_and_left_untouched(local_hub: LocalHub,
                                                                               root: Path) -> None:
    push_dataset(root, "tester/src", private=False)
    snapshot = Path(load_episodes("tester/src")[0]["root"])  # meta + data only
    assert not (snapshot / "videos").exists()
    readme_before = (snapshot / "README.md").read_text()
    result = push_dataset(snapshot, "tester/copy", provenance=PROVENANCE)  # source inferred from the cache path
    files = set(iter_repo_files(local_hub, "tester/copy"))
    assert "videos/observation.images.front/chunk-000/file-000.mp4" in files
    assert (snapshot / "README.md").read_text() == readme_before  # the cache snapshot was not written to
    assert "## Annotation provenance" in local_hub.read_file("tester/copy", "README.md").decode()
    assert result.private is True


def test_cli_push(local_hub: LocalHub, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prov = tmp_path / "prov.json"
    prov.write_text(json.dumps(PROVENANCE))
    assert cli_main(["push", f"--root={root}", "--new_repo_id=tester/cli", f"--provenance={prov}"]) == 0
    assert "first push" in capsys.readouterr().out
    assert "Qwen/Qwen2.5-VL-3B-Instruct" in local_hub.read_file("tester/cli", "README.md").decode()
    assert cli_main(["push", f"--root={root}", "--new_repo_id=someone-else/x"]) == 2
    assert "permission denied (403)" in capsys.readouterr().err


def test_episode_table_round_trips_through_datasets_push_to_hub(local_hub: LocalHub, sample_root: Path) -> None:
    import datasets

    episodes = load_episodes(sample_root)
    episodes.push_to_hub("tester/episode-table", private=True)
    assert local_hub.repo("tester/episode-table").private
    back = datasets.load_dataset("tester/episode-table", split="train")
    assert back.features == episodes.features
    assert back.to_list() == episodes.to_list()


def test_a_subprocess_reaches_the_local_hub_through_its_environment(local_hub: LocalHub, hub_env: dict[str, str],
                                                                     root: Path) -> None:
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "lerobot_keyframes.cli", "push", f"--root={root}",
                          "--new_repo_id=tester/from-subprocess"], env={**os.environ, **hub_env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "first push" in out.stdout and local_hub.repo("tester/from-subprocess").tags
