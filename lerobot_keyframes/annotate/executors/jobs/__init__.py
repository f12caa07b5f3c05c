"""Run `lerobot-keyframes annotate` on Hugging Face Jobs, as one job or as N shards balanced by frames.

A job runs in the vLLM image (`vllm/vllm-openai`) with the image's own vLLM and torch: the default runner
(`run_job`) installs this package into the image's Python and runs `python3 -m lerobot_keyframes.cli
annotate <args>` — exactly what `hub_scripts/annotate.py` does on a laptop. The `uv` runner submits the hub
script itself through `run_uv_job` (uv then installs the script's inline dependencies, vLLM included, in its
own environment). `HF_TOKEN` always travels as a secret, never in the command or the environment; a
timeout is always set; the job is labelled with its run id, source and target.

Runs whose result would be thrown away (no `--push_to_hub=true`) and runs that need files of this machine
(`--root`, a local `--repo_id` or `--vlm.model_id`) are refused before anything is submitted.

Sharding (`--shards N`): episodes are split into N shards balanced by frame count (longest-first greedy).
Shard i runs `annotate --only_episodes=<its episodes> --push_branch=<branch> --push_staging_only=true`
and pushes its staging (`hub.merge.push_shard_staging`) to its own branch of the work repo; `resubmit_failed_shards` submits
again only the shards whose branch has no completion marker and whose job is not running.

Modules, in the order a run uses them: `config` (JobConfig and its option sets), `args` (the annotate argv
and its checks), `package` (what a job installs), `spec` (the exact job spec), `submit` (one job, or N
shard jobs), `shards` (frame-balanced planning), `status` (job and run records, logs), `resubmit` (the shards
that did not finish), `merge` (`lerobot-keyframes merge`: the shards' staging written and pushed once).
HF Jobs itself (flavors, stages, the calls that read a job back) is `hub.jobs`; the shard branches `hub.merge`.
"""

from __future__ import annotations

from .args import (
    EPISODES_FLAG,
    PUSH_BRANCH_FLAG,
    STAGING_ONLY_FLAG,
    JobRepos,
    check_annotate_args,
    flag_values,
    strip_job_flags,
    without_flags,
)
from .config import (
    DEFAULT_IMAGE,
    DEFAULT_PACKAGE,
    PACKAGE_ENV,
    RUN_ID_ENV,
    SHARD_ENV,
    TERMINAL_STAGES,
    Flavor,
    JobConfig,
    JobStage,
    Runner,
    known_flavors,
    parse_timeout,
)
from .merge import MergeConfig, run_merge, shard_sources
from .package import job_package, package_requirement, with_package
from .resubmit import resubmit_failed_shards
from .shards import Shard, episode_lengths, plan_shards, shard_branch
from .spec import BOOTSTRAP, JobSpec, build_job_spec
from .status import JobHandle, RunFileError, ShardedRun, follow_logs
from .submit import submit_annotation_job, submit_sharded_annotation

__all__ = [
    "BOOTSTRAP", "DEFAULT_IMAGE", "DEFAULT_PACKAGE", "EPISODES_FLAG", "PACKAGE_ENV", "PUSH_BRANCH_FLAG",
    "RUN_ID_ENV", "SHARD_ENV", "STAGING_ONLY_FLAG", "TERMINAL_STAGES", "Flavor", "JobConfig", "JobHandle",
    "JobRepos", "JobSpec", "JobStage", "MergeConfig", "RunFileError", "Runner", "Shard", "ShardedRun",
    "build_job_spec", "check_annotate_args", "episode_lengths", "flag_values", "follow_logs", "job_package",
    "known_flavors", "package_requirement", "parse_timeout", "plan_shards", "resubmit_failed_shards", "run_merge",
    "shard_branch", "shard_sources", "strip_job_flags", "submit_annotation_job", "submit_sharded_annotation",
    "with_package", "without_flags",
]
