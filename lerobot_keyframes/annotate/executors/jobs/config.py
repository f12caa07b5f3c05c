"""`JobConfig` (the `--job.*` flags), the option sets it takes, and the names a job's environment carries.

HF Jobs' own sets (flavors, stages, timeouts) are `hub.jobs`'; they are re-exported here with the flags that take them.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass
from typing import ClassVar, Literal

from .... import __version__
from ....hub.jobs import RUN_ID_ENV, TERMINAL_STAGES, Flavor, JobStage, known_flavors, parse_timeout
from ...run.plan import SHARD_ENV

Runner = Literal["run_job", "uv"]  # run_job: the image's own vLLM | uv: run_uv_job(script)

DEFAULT_IMAGE = "vllm/vllm-openai:latest"
DEFAULT_PACKAGE = f"lerobot_keyframes=={__version__}"
PACKAGE_ENV = "LEROBOT_KEYFRAMES_PACKAGE"


@dataclass(frozen=True)
class JobConfig:
    """Where and how the annotation job runs on Hugging Face Jobs (`--job.*` flags).

    `flavor` is typed `str` so `--job.flavor` reads as lerobot-annotate's `--job.target STR`; it is checked
    against `known_flavors()` (the `Flavor` set) on creation.
    """

    # lerobot-annotate's `--job.target=<flavor>` is our `--job.flavor` (`local` / unset: run here, no job).
    FLAG_ALIASES: ClassVar[dict[str, str]] = {"target": "flavor"}

    flavor: str = "l4x1"  # HF Jobs hardware, e.g. l4x1|a10g-large|a100-large|h200 (annotate: unset or local runs here)
    timeout: str = "2h"  # always set: s, m, h or d suffix, or seconds
    image: str = DEFAULT_IMAGE  # Docker image the job runs in (run_job: needs python3 and vLLM inside)
    runner: Runner = "run_job"  # run_job: the image's own vLLM | uv: run_uv_job(script)
    package: str | None = None  # what run_job installs; unset: the code running here (git URL@commit, or this version from PyPI)
    script: str | None = None  # uv runner: URL of hub_scripts/annotate.py
    namespace: str | None = None  # user or org that owns (and pays for) the job; unset: the token's user
    labels: tuple[str, ...] = ()  # extra job labels, comma-separated key=value
    env: tuple[str, ...] = ()  # KEY=VALUE, passed as plain environment (never secrets)
    detach: bool = False  # return after submitting instead of following the logs (shards always detach)
    attempts: int | None = None  # max attempts, the first run included (unset: the Hub's default, 1)
    shards: int = 1  # split into N frame-balanced shard jobs (same as --shards)
    work_repo_id: str | None = None  # dataset repo the shard branches are pushed to (unset: --new_repo_id)
    tags: tuple[str, ...] = ()  # extra tags, comma-separated or a JSON list; each becomes a job label tag=true
    lerobot_ref: str | None = None  # lerobot-annotate's git ref of lerobot; here the job installs --job.package
    dry_run: bool = False  # print the exact job spec (image, command, env, secret names, flavor, timeout); submit nothing

    def __post_init__(self) -> None:
        if self.flavor == "local":
            raise ValueError("--job.target=local (--job.flavor=local) means run here, not on HF Jobs: run "
                             "`lerobot-keyframes annotate` without --job.* flags")
        flavors = known_flavors()
        if self.flavor not in flavors:
            near = difflib.get_close_matches(self.flavor, sorted(flavors), n=1)
            raise ValueError(f"--job.flavor={self.flavor} is not an HF Jobs flavor"
                             + (f" (did you mean {near[0]}?)" if near else "")
                             + f"; one of: {', '.join(sorted(flavors))}")
        if self.runner not in typing.get_args(Runner):
            raise ValueError(f"--job.runner must be run_job or uv, got {self.runner!r}")
        if parse_timeout(self.timeout) <= 0:
            raise ValueError(f"--job.timeout must be positive, got {self.timeout!r}")
        if self.shards < 1:
            raise ValueError(f"--job.shards must be >= 1, got {self.shards}")
        for item in (*self.labels, *self.env):
            if "=" not in item:
                raise ValueError(f"expected KEY=VALUE, got {item!r}")


__all__ = ["DEFAULT_IMAGE", "DEFAULT_PACKAGE", "PACKAGE_ENV", "RUN_ID_ENV", "SHARD_ENV", "TERMINAL_STAGES", "Flavor",
           "JobConfig", "JobStage", "Runner", "known_flavors", "parse_timeout"]
