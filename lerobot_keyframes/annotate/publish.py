"""After a run: push the annotated dataset (or, in a shard job, only its staging) to the Hub."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .config import AnnotateConfig

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from ..hub import PushResult
    from .pipeline import AnnotateResult

logger = logging.getLogger(__name__)


def push_target(config: AnnotateConfig) -> str:
    if config.new_repo_id:
        return config.new_repo_id
    if config.repo_id and config.allow_source_overwrite:
        return config.repo_id
    raise ValueError("--push_to_hub=true needs --new_repo_id=<user/name> (the source repo is left untouched; "
                     "pass --allow_source_overwrite=true to push back to --repo_id)")


def publish(config: AnnotateConfig, result: AnnotateResult, source_revision: str | None) -> PushResult | str:
    """Push `result.output_root` (one commit of what changed, v3.0 tag, card with provenance), or in a shard job
    (`--push_staging_only`) push the staging to `--push_branch` for `lerobot-keyframes merge`.

    Returns the `PushResult` of the push, or in a shard job the commit of the staging push."""
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

    annotated = set(result.episodes) - set(result.failures)
    check_push_keeps_rows(result.output_root, target, annotated=annotated, replace_existing=config.replace_existing)
    validation = result.validation
    provenance = {**result.provenance, "validator": validation.summary() if validation is not None else "skipped"}
    return push_dataset(
        result.output_root, target, private=config.private, source_repo_id=config.repo_id,
        allow_source_overwrite=config.allow_source_overwrite, provenance=provenance, source_revision=source_revision,
        commit_message=config.push_commit_message,
    )


def shard_row_counts(path: Path) -> Counter:
    """Language rows per episode stored in one data shard (persistent rows once per episode, every event)."""
    import numpy as np
    import pyarrow.parquet as pq

    from ..language.schema import LANGUAGE_EVENTS, LANGUAGE_PERSISTENT

    names = pq.read_schema(path).names
    cols = [c for c in (LANGUAGE_PERSISTENT, LANGUAGE_EVENTS) if c in names]
    counts: Counter = Counter()
    if not cols:
        return counts
    table = pq.read_table(path, columns=["episode_index", *cols])
    episodes = table["episode_index"].to_numpy()
    for col in cols:
        lengths = np.asarray(table[col].combine_chunks().value_lengths().fill_null(0))
        for e in np.unique(episodes):
            sel = lengths[episodes == e]
            counts[int(e)] += int(sel[0]) if col == LANGUAGE_PERSISTENT and len(sel) else int(sel.sum())
    return counts


def local_row_counts(root: Path) -> Counter:
    counts: Counter = Counter()
    for path in sorted((Path(root) / "data").rglob("*.parquet")):
        counts.update(shard_row_counts(path))
    return counts


def remote_row_counts(repo_id: str, *, revision: str = "main", token: str | None = None,
                      api: HfApi | None = None) -> Counter | None:
    """Language rows per episode in a Hub dataset repo's data shards; None when the repo does not exist."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    api = api if api is not None else HfApi(token=token)
    try:
        files = api.list_repo_files(repo_id, repo_type="dataset", revision=revision, token=token)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None
    counts: Counter = Counter()
    for name in files:
        if name.startswith("data/") and name.endswith(".parquet"):
            path = api.hf_hub_download(repo_id, name, repo_type="dataset", revision=revision, token=token)
            counts.update(shard_row_counts(Path(path)))
    return counts


def check_push_keeps_rows(root: Path, repo_id: str, *, annotated: Iterable[int] = (), replace_existing: bool = False,
                          token: str | None = None, api: HfApi | None = None) -> None:
    """Refuse a push that would leave an episode of `repo_id` with fewer language rows than it has there, when
    that episode was not annotated by this run (it failed, or was not asked for), or would leave it with none.
    `replace_existing` (--replace_existing=true) allows it."""
    from ..hub.errors import HubError

    if replace_existing:
        return
    remote = remote_row_counts(repo_id, token=token, api=api)
    if not remote:
        return
    local = local_row_counts(root)
    done = set(annotated)
    losing = {e: (n, local.get(e, 0)) for e, n in sorted(remote.items())
              if local.get(e, 0) < n and (e not in done or local.get(e, 0) == 0)}
    if losing:
        e, (had, would) = next(iter(losing.items()))
        raise HubError(
            f"refusing to push {root} to {repo_id}: {len(losing)} episode(s) would lose language rows there "
            f"(episode {e}: {had} -> {would}; episodes {sorted(losing)[:20]}) because this run did not annotate "
            "them (failed or not asked). Nothing was pushed. Re-run them (--only_episodes=...) or pass "
            "--replace_existing=true to replace the repo's rows anyway."
        )
