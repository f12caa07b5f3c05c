"""Resubmitting the shards of a recorded run that did not finish (and whose job is not still running)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ....hub._api import get_api
from ....hub.errors import HubError
from ....hub.merge import shard_complete
from .config import TERMINAL_STAGES, JobConfig
from .shards import Shard
from .status import ShardedRun
from .submit import shard_args, submit_annotation_job

if TYPE_CHECKING:
    from huggingface_hub import HfApi


def recorded_config(run: ShardedRun) -> JobConfig:
    """The `JobConfig` a run was submitted with (its JSON lists back to tuples)."""
    saved = run.config
    return JobConfig(**{**saved, "labels": tuple(saved.get("labels", ())), "env": tuple(saved.get("env", ())),
                        "tags": tuple(saved.get("tags", ()))})


def resubmit_failed_shards(
    run: ShardedRun,
    api: HfApi | None = None,
    *,
    token: str | None = None,
    config: JobConfig | None = None,
    run_file: str | Path | None = None,
    print_fn: Callable[[str], None] = print,
) -> list[int]:
    """Resubmit the shards that did not finish (no marker on their branch, job not scheduled or running).

    Args:
        run (`ShardedRun`):
            The run record; updated in place (new job ids).
        api (`HfApi`, *optional*):
            The client (default: `HfApi(token=token)`).
        token (`str`, *optional*):
            The Hugging Face token.
        config (`JobConfig`, *optional*):
            How to run the new jobs (default: the run's own config).
        run_file (`str` or `Path`, *optional*):
            Where the updated record is saved after every resubmission.
        print_fn (`Callable[[str], None]`, *optional*):
            Where the URLs go.

    Returns:
        `list[int]`: the indices of the shards resubmitted.
    """
    api = get_api(api, token)
    config = dataclasses.replace(config or recorded_config(run), detach=True)
    args = shard_args(run.annotate_args, run.work_repo_id)
    resubmitted = []
    for i, handle in enumerate(run.shards):
        if handle.branch and shard_complete(api, run.work_repo_id, handle.branch, token):
            continue
        try:
            stage = handle.refresh(api, token)
        except HubError:
            stage = None  # job unknown: treat as failed
        if stage is not None and stage not in TERMINAL_STAGES:
            print_fn(f"shard {handle.shard} is still {stage}: {handle.url}")
            continue
        shard = Shard(handle.shard if handle.shard is not None else i, tuple(handle.episodes or ()), handle.frames or 0)
        run.shards[i] = submit_annotation_job(config, args, api, token=token, run_id=run.run_id, shard=shard,
                                              num_shards=handle.num_shards or len(run.shards), branch=handle.branch,
                                              print_fn=print_fn, check_source=False)
        resubmitted.append(shard.index)
        if run_file is not None:
            run.save(run_file)
    if not resubmitted:
        print_fn(f"Run {run.run_id}: no failed shard to resubmit")
    return resubmitted
