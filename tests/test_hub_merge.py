"""Shard staging pushed to branches, collected back as a checked union and handed to the writer callback."""

from __future__ import annotations

import filecmp
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from lerobot_keyframes.annotate.executors.jobs import plan_shards, shard_branch
from lerobot_keyframes.annotate.run.staging import Staging
from lerobot_keyframes.hub.merge import (
    SHARD_MARKER,
    MergeError,
    ShardSource,
    collect_shards,
    merge_shards,
    push_shard_staging,
    staged_files,
)
from lerobot_keyframes.testing.local_hub import LocalHub

pytest_plugins = ("hub_fixtures",)  # the local_hub fixture

LENGTHS = {0: 90, 1: 40, 2: 60, 3: 30, 4: 75, 5: 20, 6: 55}
WORK = "tester/work"


def _stage(directory: Path, episodes: tuple[int, ...] | list[int]) -> Staging:
    staging = Staging(directory)
    for e in episodes:
        staging.write(e, "plan", f"key-{e}", [
            {"role": "assistant", "content": f"grasp the cube ({e})", "style": "subtask", "timestamp": 0.0},
            {"role": "assistant", "content": f"1. grasp ({e})", "style": "plan", "timestamp": 0.0},
        ])
        staging.write(e, "vqa", f"vqa-{e}", [
            {"role": "user", "content": "how many cubes?", "style": "vqa", "camera": "front", "timestamp": 0.5},
        ])
    return staging


def _push_shards(tmp_path: Path, run_id: str = "r1") -> list[ShardSource]:
    shards = plan_shards(LENGTHS, 3)
    sources = []
    for shard in shards:
        branch = shard_branch(run_id, shard.index, len(shards))
        staging = _stage(tmp_path / f"shard{shard.index}", shard.episodes)
        push_shard_staging(staging.dir, WORK, branch=branch, episodes=shard.episodes, run_id=run_id,
                           shard=shard.index, num_shards=len(shards))
        sources.append(ShardSource(branch, shard.episodes))
    return sources


def test_merged_staging_equals_the_unsharded_staging(local_hub: LocalHub, tmp_path: Path) -> None:
    reference = _stage(tmp_path / "unsharded", sorted(LENGTHS))
    sources = _push_shards(tmp_path)
    assert local_hub.repo(WORK).private  # the work repo is private by default
    seen = {}

    def write(staging_dir: Path, episodes: list[int]) -> str:
        seen["episodes"] = episodes
        merged = Staging(staging_dir)
        seen["rows"] = {e: merged.rows(e) for e in episodes}
        return "written"

    result = merge_shards(WORK, sources, write=write, work_dir=tmp_path / "merge")
    assert result.written == "written" and seen["episodes"] == sorted(LENGTHS)
    assert seen["rows"] == {e: reference.rows(e) for e in sorted(LENGTHS)}
    merged_files = staged_files(result.collected.staging_dir)
    assert sorted(merged_files) == sorted(staged_files(reference.dir))
    for rel, path in merged_files.items():
        assert filecmp.cmp(path, reference.dir / rel, shallow=False), rel
    assert result.collected.by_shard == {s.branch: sorted(s.episodes) for s in sources}
    marker = json.loads(local_hub.read_file(WORK, SHARD_MARKER, revision=sources[0].branch))
    assert marker["run_id"] == "r1" and marker["episodes"] == list(sources[0].episodes) == marker["staged"]


def test_pushing_shard_staging_again_is_a_no_op_and_removes_stale_files(local_hub: LocalHub, tmp_path: Path) -> None:
    staging = _stage(tmp_path / "s", [1, 2])
    push_shard_staging(staging.dir, WORK, branch="b", episodes=[1, 2, 3])
    n = len(local_hub.commits(WORK, revision="b"))
    push_shard_staging(staging.dir, WORK, branch="b", episodes=[1, 2, 3])
    assert len(local_hub.commits(WORK, revision="b")) == n
    (staging.dir / "episode-000002/vqa.jsonl").unlink()
    push_shard_staging(staging.dir, WORK, branch="b", episodes=[1, 2, 3])
    head = local_hub.commits(WORK, revision="b")[0]
    assert head.deleted == ["staging/episode-000002/vqa.jsonl"] and head.added == []  # marker unchanged
    with pytest.raises(MergeError, match="episode 7 is not one of this shard's episodes"):
        push_shard_staging(_stage(tmp_path / "t", [7]).dir, WORK, branch="b", episodes=[1, 2, 3])


def _work_branch(api: HfApi, branch: str) -> None:
    api.create_repo(WORK, repo_type="dataset", private=True, exist_ok=True)
    api.create_branch(WORK, branch=branch, repo_type="dataset")


def _missing_branch(tmp_path: Path, api: HfApi) -> list[ShardSource | str]:
    return [*_push_shards(tmp_path), ShardSource("lerobot-keyframes-r1-shard-009-of-003", (99,))]


def _unfinished(tmp_path: Path, api: HfApi) -> list[ShardSource | str]:
    _work_branch(api, "unfinished")
    api.create_commit(WORK, repo_type="dataset", revision="unfinished", commit_message="partial",
                      operations=[CommitOperationAdd("staging/episode-000099/plan.jsonl", b'{"episode_index": 99}\n')])
    return ["unfinished"]


def _overlapping(tmp_path: Path, api: HfApi) -> list[ShardSource | str]:
    dup = next(s for s in _push_shards(tmp_path) if 0 in s.episodes)
    push_shard_staging(_stage(tmp_path / "dup", [0]).dir, WORK, branch="dup", episodes=[0])
    return [dup, "dup"]


def _planned_more_than_its_marker(tmp_path: Path, api: HfApi) -> list[ShardSource | str]:
    return [ShardSource(_push_shards(tmp_path)[0].branch, (0, 1, 2, 3, 4, 5, 6))]


def _partial(tmp_path: Path, api: HfApi) -> list[ShardSource | str]:
    """A shard that staged only part of its episodes, and one module that failed."""
    partial = tmp_path / "partial"
    _stage(partial, [10])
    Staging(partial).write_error(11, "vqa", "k", "model answer was not valid JSON")
    push_shard_staging(partial, WORK, branch="partial", episodes=[10, 11, 12])
    return ["partial"]


def _corrupt(tmp_path: Path, api: HfApi) -> list[ShardSource | str]:
    """A corrupt staged file: named with its line."""
    _work_branch(api, "corrupt")
    api.create_commit(WORK, repo_type="dataset", revision="corrupt", commit_message="bad", operations=[
        CommitOperationAdd("staging/episode-000020/plan.jsonl", b'{"episode_index": 20}\n{not json\n'),
        CommitOperationAdd(SHARD_MARKER, json.dumps({"episodes": [20]}).encode())])
    return ["corrupt"]


@pytest.mark.parametrize(("setup", "message"), [
    pytest.param(_missing_branch, "does not exist", id="missing-branch"),
    pytest.param(_unfinished, "did not finish", id="unfinished"),
    pytest.param(_overlapping, r"episodes \[0\] are planned in two shards", id="overlapping"),
    pytest.param(_planned_more_than_its_marker, "lists episodes", id="planned-more-than-its-marker"),
    pytest.param(_partial, r"episodes \[12\] have no staged annotations.*episodes \[11\] failed", id="partial"),
    pytest.param(_corrupt, r"staging/episode-000020/plan.jsonl:2: not JSON", id="corrupt-file"),
])
def test_merge_refuses_unfinished_overlapping_or_broken_shards(local_hub: LocalHub, tmp_path: Path,
                                                               setup: Callable[[Path, HfApi], list[ShardSource | str]],
                                                               message: str) -> None:
    shards = setup(tmp_path, HfApi())
    with pytest.raises(MergeError, match=message):
        collect_shards(WORK, shards, work_dir=tmp_path / "merge")


def test_a_partial_shard_merges_what_it_staged_when_completeness_is_not_required(local_hub: LocalHub,
                                                                                tmp_path: Path) -> None:
    collected = collect_shards(WORK, _partial(tmp_path, HfApi()), work_dir=tmp_path / "merge", require_complete=False)
    assert collected.episodes == [10] and collected.missing == [12] and list(collected.failed) == [11]
