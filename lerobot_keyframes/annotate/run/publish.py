"""After a run: push the annotated dataset, or open a pull request on the source (or, in a shard job, push only its
staging) to the Hub. The Hub side (the guard: rows, source, journal; the pull request) is `hub.push`'s."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from ..config import AnnotateConfig
from .plan import SHARD_ENV, push_target

if TYPE_CHECKING:
    from ...dataset.source import ResolvedSource
    from ...hub import PushResult
    from .result import AnnotateResult

logger = logging.getLogger(__name__)


def complete_videos(source: ResolvedSource) -> list[str]:
    """Before a new root is written from a Hub source: fetch, whole, every video its meta/episodes references and
    the snapshot lacks (the frames may have been read by byte range), so the new root is a complete LeRobot
    dataset. A pull request (`--create_pr=true`) needs none. Returns the summary line (none when nothing moved)."""
    if source.repo_id is None:
        return []
    from ...dataset.layout import DatasetLayout
    from ...hub.push import referenced_files

    missing = [p for p in referenced_files(DatasetLayout.open(source.root))
               if p.startswith("videos/") and not (source.root / p).is_file()]
    if not missing:
        return []
    source.fetch_files(missing)
    size = sum((source.root / p).stat().st_size for p in missing if (source.root / p).is_file())
    return [f"videos: fetched {len(missing)} file(s) whole ({size / 1e6:.1f} MB) from {source.repo_id}@"
            f"{source.revision} for the new root (a pull request, --create_pr=true, moves none)"]


def publish(config: AnnotateConfig, result: AnnotateResult, source_revision: str | None) -> PushResult | str:
    """Push `result.output_root` (one commit of what changed, v3.0 tag, card with provenance), or with --create_pr
    open a pull request with its data and meta files, or in a shard job (`--push_staging_only`) push the staging
    to `--push_branch` for `lerobot-keyframes merge`. The guard of `hub.push` runs first: the episodes this run
    did not annotate (failed, or not asked) may not lose rows on the target (--allow_row_loss=true allows it).

    Returns the `PushResult` of the push, or in a shard job the commit of the staging push."""
    target = push_target(config)
    if config.push_staging_only:
        from ...hub.jobs import RUN_ID_ENV
        from ...hub.merge import push_shard_staging

        if not config.push_branch:
            raise ValueError("--push_staging_only=true needs --push_branch=<branch>")
        shard, _, num = os.environ.get(SHARD_ENV, "").partition("/")
        return push_shard_staging(
            result.staging_dir, target, branch=config.push_branch, episodes=result.episodes,
            run_id=os.environ.get(RUN_ID_ENV), shard=int(shard) if shard else None,
            num_shards=int(num) if num else None, private=config.private,
        )
    from ...hub.push import push_dataset

    annotated = sorted(set(result.episodes) - set(result.failures) - set(result.skipped))
    validation = result.validation
    provenance = {**result.provenance, "validator": validation.summary() if validation is not None else "skipped"}
    return push_dataset(
        result.output_root, target, private=config.private, source_repo_id=config.repo_id,
        allow_source_overwrite=config.allow_source_overwrite, provenance=provenance, source_revision=source_revision,
        commit_message=config.push_commit_message, allow_row_loss=config.allow_row_loss, annotated=annotated,
        create_pr=config.create_pr,
    )
