"""`lerobot-keyframes merge`: every shard job pushed its staging to a branch; write and push the dataset once.

The shards' staged files are collected (and checked) by `hub.merge.collect_shards`; `run.merge.write_from_staging`
writes them exactly as a single-machine run would, with the modules and writer settings the shards recorded in
their markers; the dataset is pushed once and the shard branches deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .... import __version__
from ....dataset.layout import check_output_separate
from ....dataset.source import resolve_source
from ....hub.merge import ShardSource, collect_shards, delete_shard_branches
from ....hub.push import push_dataset
from ...run.merge import agreed_record, merge_plan, write_from_staging
from ...run.publish import complete_videos
from .status import ShardedRun

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeConfig:
    """`lerobot-keyframes merge`: which run to merge, where to write it, where to push it."""

    run_file: Path | None = None  # the record written by `annotate --job.* --shards N`
    repo_id: str | None = None  # the source dataset (else from the run file)
    work_repo_id: str | None = None  # where the shard branches are (else from the run file / new_repo_id)
    new_repo_id: str | None = None  # the final dataset (else from the run file)
    branches: tuple[str, ...] = ()  # shard branches (else from the run file)
    out: Path = Path("merged")  # where the merged dataset is written (its shard downloads go next to it, in <out>.shards)
    push_to_hub: bool = True  # push the merged dataset to --new_repo_id in one commit (then the shard branches are deleted)
    create_pr: bool = False  # instead: a pull request on the source (--repo_id) with data + meta only, no video
    allow_row_loss: bool = False  # push even if an episode of the target loses language rows there
    private: bool | None = None  # unset: private unless the source is known public
    require_complete: bool = True  # refuse to merge while a shard is missing or unfinished
    skip_validation: bool = False  # write despite validation errors, except structural ones


def shard_sources(run: ShardedRun) -> list[ShardSource]:
    """`ShardSource`s of a `ShardedRun` (branch and planned episodes of each shard)."""
    return [ShardSource(branch=h.branch, episodes=tuple(h.episodes) if h.episodes is not None else None)
            for h in run.shards if h.branch]


def run_merge(config: MergeConfig, *, api: HfApi | None = None, token: str | None = None) -> dict[str, Any]:
    """Collect a sharded run's staging from its branches, write the dataset once, push it once.

    Args:
        config: the run to merge (`run_file`, or the repos and branches), where to write it, whether to push.
        api: the `HfApi` to talk to (default: one made with `token`; tests pass one pointed at a local Hub).
        token: the Hub token (default: the logged-in one).

    Returns:
        `{"out": root, "episodes": [...], "validation": ValidationReport}` plus `"push"` (a `PushResult`)
        when pushed.
    """
    run = ShardedRun.load(config.run_file) if config.run_file else None
    source_repo = config.repo_id or (run.source_repo_id if run else None)
    target = config.new_repo_id or (run.target_repo_id if run else None)
    work_repo = config.work_repo_id or (run.work_repo_id if run else None) or target
    shards = [ShardSource(branch=b) for b in config.branches] or (shard_sources(run) if run else [])
    if not (source_repo and work_repo and shards):
        raise ValueError("merge needs --run_file, or --repo_id, --new_repo_id (or --work_repo_id) and --branches")
    if config.create_pr:
        target = config.new_repo_id or source_repo  # a pull request on the source, unless told otherwise
    if config.push_to_hub and not target:
        raise ValueError("merge --push_to_hub=true needs --new_repo_id (the final dataset)")
    source = resolve_source(source_repo)
    out = Path(config.out).absolute()
    check_output_separate(source.root, out)  # before any shard is downloaded
    notes: list[str] = []
    provenance = {"package": "lerobot_keyframes", "package_version": __version__, "merged_shards": len(shards),
                  "run_id": run.run_id if run else None, "source": source_repo,
                  "source_repo_id": source_repo, "source_revision": source.revision}
    collected = collect_shards(work_repo, shards, work_dir=out.with_name(out.name + ".shards"), token=token, api=api,
                               require_complete=config.require_complete)
    logger.info("merging %d episodes from %d shards (%d files)", len(collected.episodes), len(collected.by_shard),
                collected.files)
    # the modules the shards ran (a user's own too) and their writer settings, from the shards' markers
    plan = merge_plan(source, out, agreed_record(collected.runs), skip_validation=config.skip_validation)
    provenance["episodes"] = len(collected.episodes)
    if not (config.push_to_hub and config.create_pr):  # a new root: every video, whole (a pull request: none)
        notes.extend(complete_videos(source))
    report = write_from_staging(plan, collected.staging_dir, collected.episodes, provenance)
    outcome: dict[str, Any] = {"out": str(out), "episodes": collected.episodes, "validation": report,
                               "notes": notes}
    if config.push_to_hub and report.ok:
        provenance["validator"] = report.summary()
        outcome["push"] = push_dataset(out, target, private=config.private, source_repo_id=source_repo,
                                       provenance=provenance, source_revision=source.revision, token=token, api=api,
                                       annotated=collected.episodes, allow_row_loss=config.allow_row_loss,
                                       create_pr=config.create_pr)
        # pushed once: the shard branches have served their purpose
        delete_shard_branches(work_repo, [s.branch for s in shards], token=token, api=api)
    return outcome
