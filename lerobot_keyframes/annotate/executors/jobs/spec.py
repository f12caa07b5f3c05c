"""The exact spec of one job (image, command, env, secret names, labels, flavor, timeout), built before submitting.

A `run_job` job installs this package into the image's Python (keeping the image's vLLM and torch) and runs
`python3 -m lerobot_keyframes.cli annotate <args>` (`BOOTSTRAP`); a `uv` job runs the hub script through
`run_uv_job`. `HF_TOKEN` travels only in `secrets`, never in the command or the environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ....hub.errors import TOKEN_PATTERN, HubError
from .args import EPISODES_FLAG, PUSH_BRANCH_FLAG, STAGING_ONLY_FLAG, JobRepos, flag_values, without_flags
from .config import PACKAGE_ENV, RUN_ID_ENV, SHARD_ENV, JobConfig, Runner
from .package import with_package
from .shards import Shard

# Installs the package into the image's Python (keeping the image's vLLM and torch), then runs annotate.
BOOTSTRAP = (
    'set -euo pipefail; '
    'if command -v uv >/dev/null 2>&1; then uv pip install --system "$' + PACKAGE_ENV + '"; '
    'else python3 -m pip install --no-cache-dir "$' + PACKAGE_ENV + '"; fi; '
    'exec python3 -m lerobot_keyframes.cli annotate "$@"'
)
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class JobSpec:
    """Everything one job is submitted with. `secrets` holds values; `dry_run_view` shows only their names."""

    runner: Runner
    args: tuple[str, ...]  # the annotate flags the job runs
    image: str
    env: dict[str, str]
    secrets: dict[str, str]
    flavor: str
    timeout: str
    labels: dict[str, str]
    name: str
    namespace: str | None
    attempts: int | None = None
    script: str | None = None  # uv runner: URL of hub_scripts/annotate.py

    @property
    def command(self) -> list[str]:
        """The `run_job` command: `BOOTSTRAP` with the annotate flags as its arguments."""
        return ["bash", "-c", BOOTSTRAP, "lerobot-keyframes-job", *self.args]

    def submit_kwargs(self) -> dict[str, Any]:
        """The keyword arguments `HfApi.run_job` and `HfApi.run_uv_job` share."""
        kwargs: dict[str, Any] = {
            "image": self.image, "env": dict(self.env), "secrets": dict(self.secrets), "flavor": self.flavor,
            "timeout": self.timeout, "labels": dict(self.labels), "name": self.name, "namespace": self.namespace,
        }
        if self.attempts is not None:
            kwargs["attempts"] = self.attempts
        return kwargs

    def dry_run_view(self) -> dict[str, Any]:
        """What `--job.dry_run=true` prints: the exact spec, secrets by name only."""
        view = {**self.submit_kwargs(), "secrets": sorted(self.secrets), "runner": self.runner}
        if self.runner == "uv":
            view.update(runner="run_uv_job", script=self.script, script_args=list(self.args))
        else:
            view["command"] = self.command
        return view


def label_value(value: str) -> str:
    """`value` as a job label value (letters, digits, `_.-`; at most 63 characters)."""
    return _LABEL_BAD.sub("-", value).strip("-")[:63]


def _pairs(items: Sequence[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def job_args(annotate_args: Sequence[str], *, shard: Shard | None = None, branch: str | None = None) -> list[str]:
    """The annotate flags a job runs: the vLLM backend unless one is given, and a shard's own flags."""
    args = [a for a in annotate_args if a != "--"]
    if "--vlm.backend" not in flag_values(args):
        args.append("--vlm.backend=vllm")
    if shard is not None:
        args = without_flags(args, (EPISODES_FLAG, PUSH_BRANCH_FLAG, STAGING_ONLY_FLAG))
        args += [f"{EPISODES_FLAG}={','.join(map(str, shard.episodes))}", f"{PUSH_BRANCH_FLAG}={branch}",
                 f"{STAGING_ONLY_FLAG}=true"]
    return args


def _labels(config: JobConfig, repos: JobRepos, run_id: str, shard: Shard | None,
            num_shards: int | None) -> dict[str, str]:
    labels = {"app": "lerobot-keyframes", "lerobot-keyframes-run": run_id, "source": label_value(repos["source"])}
    if repos["target"]:
        labels["target"] = label_value(repos["target"])
    if shard is not None:
        labels["shard"] = f"{shard.index}-of-{num_shards}"
    labels.update(dict.fromkeys(config.tags, "true"))
    labels.update(_pairs(config.labels))
    return labels


def build_job_spec(config: JobConfig, annotate_args: Sequence[str], *, repos: JobRepos, run_id: str, secret: str,
                   shard: Shard | None = None, num_shards: int | None = None, branch: str | None = None,
                   print_fn: Callable[[str], None] = print) -> JobSpec:
    """The spec of one (shard) job; a `run_job` spec carries the resolved package in its environment.

    Args:
        config (`JobConfig`):
            Where and how the job runs.
        annotate_args (`Sequence[str]`):
            The annotate flags, checked by `check_annotate_args` (whose result is `repos`).
        repos (`JobRepos`):
            The source and target repo ids, for the labels.
        run_id (`str`):
            The run's id (a label, the job name and `LEROBOT_KEYFRAMES_RUN_ID`).
        secret (`str`):
            The token the job gets as its `HF_TOKEN` secret.
        shard (`Shard`, *optional*):
            The shard this job annotates, of `num_shards`, pushing to `branch`.
        print_fn (`Callable[[str], None]`, *optional*):
            Where warnings go.

    Raises:
        `HubError`: `--job.env` carries a token.
    """
    env = {RUN_ID_ENV: run_id, "PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", **_pairs(config.env)}
    if shard is not None:
        env[SHARD_ENV] = f"{shard.index}/{num_shards}"
    if any(TOKEN_PATTERN.search(v) for v in env.values()) or "HF_TOKEN" in env:
        raise HubError("--job.env must not carry tokens; HF_TOKEN is passed as a secret automatically.")
    if config.lerobot_ref is not None:
        print_fn(f"warning: --job.lerobot_ref={config.lerobot_ref} is accepted for lerobot-annotate compatibility but "
                 "not applied: the job installs lerobot_keyframes (--job.package), not lerobot from git")
    if config.runner == "run_job":
        env[PACKAGE_ENV] = with_package(config, print_fn).package or ""
    return JobSpec(
        runner=config.runner, args=tuple(job_args(annotate_args, shard=shard, branch=branch)), image=config.image,
        env=env, secrets={"HF_TOKEN": secret}, flavor=config.flavor, timeout=config.timeout,
        labels=_labels(config, repos, run_id, shard, num_shards),
        name=f"lerobot-keyframes-{run_id}" + (f"-shard-{shard.index}" if shard is not None else ""),
        namespace=config.namespace, attempts=config.attempts, script=config.script,
    )


def format_dry_run(spec: JobSpec) -> str:
    """The line `--job.dry_run=true` prints instead of submitting."""
    return "dry run (nothing submitted): " + json.dumps(spec.dry_run_view(), indent=2, sort_keys=True)
