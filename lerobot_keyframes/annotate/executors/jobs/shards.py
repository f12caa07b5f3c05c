"""Sharding a run: episodes split into N shards balanced by frame count, each pushed to its own branch."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ....hub._api import REPO_TYPE, get_api
from ....hub.errors import HubError, hub_errors

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """One shard of a run: its index, its episodes and their total frame count."""

    index: int
    episodes: tuple[int, ...]
    frames: int


def plan_shards(lengths: Mapping[int, int] | Sequence[int], num_shards: int) -> list[Shard]:
    """Split episodes into `num_shards` shards with balanced frame totals.

    Longest episode first, each to the lightest shard; ties go to the lower index. Deterministic; never
    returns an empty shard (fewer episodes than shards: one shard per episode).

    Args:
        lengths (`Mapping[int, int]` or `Sequence[int]`):
            episode index -> frames (a sequence: the lengths of episodes 0, 1, ...).
        num_shards (`int`):
            How many shards to make.

    Raises:
        `ValueError`: no episodes, or `num_shards < 1`.
    """
    items = dict(enumerate(lengths)) if not isinstance(lengths, Mapping) else dict(lengths)
    if not items:
        raise ValueError("no episodes to shard")
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    n = min(num_shards, len(items))
    if n < num_shards:
        logger.warning("only %d episodes: using %d shards instead of %d", len(items), n, num_shards)
    buckets: list[list[int]] = [[] for _ in range(n)]
    totals = [0] * n
    for episode, length in sorted(items.items(), key=lambda kv: (-kv[1], kv[0])):
        target = min(range(n), key=lambda i: (totals[i], i))
        buckets[target].append(episode)
        totals[target] += int(length)
    return [Shard(i, tuple(sorted(b)), totals[i]) for i, b in enumerate(buckets)]


def shard_branch(run_id: str, index: int, num_shards: int) -> str:
    """The branch of the work repo that shard `index` of run `run_id` pushes its staging to."""
    return f"lerobot-keyframes-{run_id}-shard-{index:03d}-of-{num_shards:03d}"


def episode_lengths(repo_id: str, *, revision: str | None = None, api: HfApi | None = None,
                    token: str | None = None) -> dict[int, int]:
    """episode_index -> frames, from the source's meta/episodes (only meta is downloaded).

    Args:
        repo_id (`str`):
            The source dataset repo on the Hub.
        revision (`str`, *optional*):
            Its revision (default: what the annotate run would read).
        api (`HfApi`, *optional*):
            The client (default: `HfApi(token=token)`).
        token (`str`, *optional*):
            The Hugging Face token.

    Raises:
        `HubError`: the download failed, or the repo has no meta/episodes parquet files.
    """
    import pyarrow.parquet as pq

    from ....dataset.source import resolve_revision

    api = get_api(api, token)
    with hub_errors("reading the episode lengths", repo_id=repo_id, revision=revision, token=token):
        rev = resolve_revision(repo_id, revision)
        root = Path(api.snapshot_download(repo_id, repo_type=REPO_TYPE, revision=rev,
                                          allow_patterns=["meta/episodes/**", "meta/info.json"], token=token))
    out: dict[int, int] = {}
    for path in sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(path, columns=["episode_index", "length"])
        out.update(zip(table["episode_index"].to_pylist(), table["length"].to_pylist()))
    if not out:
        raise HubError(f"{repo_id}@{rev}: no meta/episodes/*/*.parquet; is it a LeRobot v3 dataset?", repo_id=repo_id)
    return out
