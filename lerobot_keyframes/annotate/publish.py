"""After a run: push the annotated dataset (or, in a shard job, only its staging) to the Hub."""

from __future__ import annotations

import logging
import os
from typing import Any

from .config import AnnotateConfig

logger = logging.getLogger(__name__)


def push_target(config: AnnotateConfig) -> str:
    if config.new_repo_id:
        return config.new_repo_id
    if config.repo_id and config.allow_source_overwrite:
        return config.repo_id
    raise ValueError("--push_to_hub=true needs --new_repo_id=<user/name> (the source repo is left untouched; "
                     "pass --allow_source_overwrite=true to push back to --repo_id)")


def publish(config: AnnotateConfig, result: Any, source_revision: str | None) -> Any:
    """Push `result.output_root` (one commit of what changed, v3.0 tag, card with provenance), or in a shard job
    (`--push_staging_only`) push the staging to `--push_branch` for `lerobot-keyframes merge`."""
    target = push_target(config)
    if config.push_staging_only:
        from ..hub.jobs import RUN_ID_ENV, SHARD_ENV
        from ..hub.merge import push_shard_staging

        if not config.push_branch:
            raise ValueError("--push_staging_only=true needs --push_branch=<branch>")
        shard, _, num = os.environ.get(SHARD_ENV, "").partition("/")
        return push_shard_staging(
            result.staging_dir, target, branch=config.push_branch, episodes=result.episodes,
            run_id=os.environ.get(RUN_ID_ENV), shard=int(shard) if shard else None,
            num_shards=int(num) if num else None, private=config.private,
        )
    from ..hub.push import push_dataset

    validation = result.validation
    provenance = {**result.provenance, "validator": validation.summary() if validation is not None else "skipped"}
    return push_dataset(
        result.output_root, target, private=config.private, source_repo_id=config.repo_id,
        allow_source_overwrite=config.allow_source_overwrite, provenance=provenance, source_revision=source_revision,
    )
