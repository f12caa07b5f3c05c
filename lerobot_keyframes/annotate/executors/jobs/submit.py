"""Submitting `annotate` to HF Jobs: one job (logs followed unless detached), or N detached shard jobs."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ....hub._api import get_api
from ....hub.errors import HubError, hub_errors
from ....hub.jobs import JobStage, job_stage
from .args import EPISODES_FLAG, check_annotate_args, flag_values, last_value, without_flags
from .config import JobConfig
from .package import with_package
from .shards import Shard, episode_lengths, plan_shards, shard_branch
from .spec import JobSpec, build_job_spec, format_dry_run
from .status import JobHandle, ShardedRun, follow_logs

if TYPE_CHECKING:
    from huggingface_hub import HfApi, JobInfo


def _resolve_token(token: str | None) -> str:
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubError("HF Jobs needs a Hugging Face token with write access (the job pushes its result): set "
                       "HF_TOKEN or run `hf auth login`.")
    return found


def _handle(config: JobConfig, run_id: str, *, job_id: str, url: str, namespace: str, stage: JobStage | None,
            shard: Shard | None, num_shards: int | None, branch: str | None) -> JobHandle:
    return JobHandle(
        job_id=job_id, url=url, namespace=namespace or config.namespace or "", run_id=run_id, stage=stage,
        shard=shard.index if shard is not None else None, num_shards=num_shards, branch=branch,
        episodes=shard.episodes if shard is not None else None, frames=shard.frames if shard is not None else None,
    )


def _submit(api: HfApi, spec: JobSpec, secret: str) -> JobInfo:
    with hub_errors("submitting the job", token=secret, write=True):
        if spec.runner == "uv":
            if not spec.script:
                raise HubError("--job.runner=uv needs --job.script=<URL of hub_scripts/annotate.py> (a URL the job "
                               "can download, e.g. the raw file on the Hub or GitHub at a pinned revision).")
            return api.run_uv_job(spec.script, script_args=list(spec.args), **spec.submit_kwargs())
        return api.run_job(command=spec.command, **spec.submit_kwargs())


def submit_annotation_job(
    config: JobConfig,
    annotate_args: Sequence[str],
    api: HfApi | None = None,
    *,
    token: str | None = None,
    run_id: str | None = None,
    shard: Shard | None = None,
    num_shards: int | None = None,
    branch: str | None = None,
    print_fn: Callable[[str], None] = print,
    check_source: bool = True,
) -> JobHandle:
    """Submit one `annotate` run to HF Jobs and print its URL; follow its logs unless `config.detach`.

    Args:
        config (`JobConfig`):
            Where and how the job runs (`config.dry_run`: print the spec, submit nothing).
        annotate_args (`Sequence[str]`):
            The annotate flags; they must name a Hub `--repo_id` and `--push_to_hub=true`.
        api (`HfApi`, *optional*):
            The client (anything with `run_job`/`run_uv_job`, `repo_info`, `fetch_job_logs`, `inspect_job`);
            default `HfApi(token=token)`.
        token (`str`, *optional*):
            The token the job gets as its `HF_TOKEN` secret (default: the logged-in one).
        run_id (`str`, *optional*):
            The run's id (default: a new one).
        shard (`Shard`, *optional*):
            The shard this job annotates, of `num_shards`, pushing its staging to `branch`.
        print_fn (`Callable[[str], None]`, *optional*):
            Where the URL, warnings and logs go.
        check_source (`bool`, *optional*, defaults to `True`):
            Whether to check that the source dataset is on the Hub first.

    Raises:
        `HubError`: a refused run (see `check_annotate_args`), no token, or a Hub failure.
    """
    args = [a for a in annotate_args if a != "--"]
    repos = check_annotate_args(args, api=api, token=token, check_source=check_source and not config.dry_run)
    secret = "<HF_TOKEN>" if config.dry_run else _resolve_token(token)
    run_id = run_id or uuid.uuid4().hex[:12]
    spec = build_job_spec(config, args, repos=repos, run_id=run_id, secret=secret, shard=shard,
                          num_shards=num_shards, branch=branch, print_fn=print_fn)
    where = {"shard": shard, "num_shards": num_shards, "branch": branch}
    if config.dry_run:
        print_fn(format_dry_run(spec))
        return _handle(config, run_id, job_id="dry-run", url="", namespace="", stage="DRY_RUN", **where)
    api = get_api(api, token)
    info = _submit(api, spec, secret)
    handle = _handle(config, run_id, job_id=info.id, url=info.url,
                     namespace=getattr(getattr(info, "owner", None), "name", None) or "", stage=job_stage(info),
                     **where)
    what = f"shard {shard.index + 1}/{num_shards} ({len(shard.episodes)} episodes, {shard.frames} frames)" if shard else "job"
    print_fn(f"Submitted {what}: {handle.job_id}\n  url: {handle.url}")
    if not config.detach and shard is None:
        follow_logs(handle, api, token=secret, print_fn=print_fn)
    return handle


def shard_args(annotate_args: Sequence[str], work_repo_id: str) -> list[str]:
    """A shard job's annotate flags: the run's own, pushing to the work repo."""
    return without_flags(annotate_args, ("--new_repo_id",)) + [f"--new_repo_id={work_repo_id}"]


def _lengths_to_shard(args: Sequence[str], source: str, api: HfApi, token: str | None) -> dict[int, int]:
    """The episode lengths of the source, limited to `--only_episodes` when the run names them."""
    values = flag_values(args)
    lengths = episode_lengths(source, revision=last_value(values, "--revision"), api=api, token=token)
    only = last_value(values, EPISODES_FLAG)
    if only:
        wanted = {int(v) for v in only.split(",") if v.strip()}
        lengths = {e: n for e, n in lengths.items() if e in wanted}
    return lengths


def submit_sharded_annotation(
    config: JobConfig,
    annotate_args: Sequence[str],
    api: HfApi | None = None,
    *,
    token: str | None = None,
    lengths: Mapping[int, int] | None = None,
    run_file: str | Path | None = None,
    print_fn: Callable[[str], None] = print,
) -> ShardedRun:
    """Submit `config.shards` jobs, one per frame-balanced shard, each pushing to its own branch (detached).

    Args:
        config (`JobConfig`):
            Where and how the jobs run; `config.shards` is their number.
        annotate_args (`Sequence[str]`):
            The annotate flags of the whole run.
        api (`HfApi`, *optional*):
            The client (default: `HfApi(token=token)`).
        token (`str`, *optional*):
            The Hugging Face token.
        lengths (`Mapping[int, int]`, *optional*):
            episode index -> frames (default: read from the source's meta/episodes).
        run_file (`str` or `Path`, *optional*):
            Where the run record is saved after every submission (may contain `{run_id}`).
        print_fn (`Callable[[str], None]`, *optional*):
            Where the URLs and warnings go.

    Raises:
        `HubError`: a refused run, no work repo, or a Hub failure.
    """
    args = [a for a in annotate_args if a != "--"]
    repos = check_annotate_args(args, api=api, token=token)
    api = get_api(api, token)
    work_repo = config.work_repo_id or repos["target"]
    if not work_repo:
        raise HubError("a sharded run needs --new_repo_id (the final dataset) or --job.work_repo_id (where the shards "
                       "push their branches).")
    shards = plan_shards(lengths if lengths is not None else _lengths_to_shard(args, repos["source"], api, token),
                         config.shards)
    if config.runner != "uv":  # resolved once: every shard (and a resubmission) installs the same package
        config = with_package(config, print_fn)
    run_id = uuid.uuid4().hex[:12]
    if run_file is not None:
        run_file = Path(str(run_file).replace("{run_id}", run_id))
    run = ShardedRun(run_id=run_id, source_repo_id=repos["source"], work_repo_id=work_repo,
                     target_repo_id=repos["target"], annotate_args=args,
                     config=json.loads(json.dumps(dataclasses.asdict(config))))
    detached = dataclasses.replace(config, detach=True)
    for shard in shards:
        handle = submit_annotation_job(detached, shard_args(args, work_repo), api, token=token, run_id=run_id,
                                       shard=shard, num_shards=len(shards),
                                       branch=shard_branch(run_id, shard.index, len(shards)), print_fn=print_fn,
                                       check_source=False)
        run.shards.append(handle)
        if run_file is not None and not config.dry_run:
            run.save(run_file)  # after every submission: a crash mid-way still leaves a usable record
    print_fn(f"Run {run_id}: {len(shards)} shard jobs; frames per shard {[s.frames for s in shards]}"
             + (f"\n  record: {run_file} (resubmit failed shards: lerobot-keyframes job --resubmit_failed {run_file})"
                if run_file is not None else ""))
    return run
