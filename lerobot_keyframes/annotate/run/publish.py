"""After a run: push the annotated dataset, or open a pull request on the source (or, in a shard job, push only its
staging) to the Hub. The Hub side (the guard: rows, source, journal; the pull request) is `hub.push`'s."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .plan import RunPlan

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


def publish(plan: RunPlan, result: AnnotateResult) -> PushResult | str:
    """Push the plan's output root (one commit of what changed, v3.0 tag, card with provenance), or as a pull request
    its data and meta files, or in a shard job push the staging to the shard's branch for `lerobot-keyframes merge`
    (the marker records the run: `RunPlan.record`). The guard of `hub.push` runs first: the episodes this run did
    not annotate (failed, or not asked) may not lose rows on the target (--allow_row_loss=true allows it).

    Returns the `PushResult` of the push, or in a shard job the commit of the staging push."""
    push = plan.push
    if push is None:
        raise ValueError("publish: the run has no push target (--push_to_hub=false)")
    if push.mode == "shard_staging":
        from ...hub.merge import push_shard_staging

        return push_shard_staging(
            plan.staging_dir, push.repo_id, branch=str(push.branch), episodes=result.episodes, run_id=push.run_id,
            shard=push.shard, num_shards=push.num_shards, private=push.private, record=plan.record(),
        )
    from ...hub.push import push_dataset

    annotated = sorted(set(result.episodes) - set(result.failures) - set(result.skipped))
    validation = result.validation
    provenance = {**result.provenance, "validator": validation.summary() if validation is not None else "skipped"}
    return push_dataset(
        plan.output_root, push.repo_id, private=push.private, source_repo_id=push.source_repo_id,
        allow_source_overwrite=push.allow_source_overwrite, provenance=provenance,
        source_revision=plan.source.revision if plan.source is not None else None,
        commit_message=push.commit_message, allow_row_loss=push.allow_row_loss, annotated=annotated,
        create_pr=push.mode == "pull_request",
    )
