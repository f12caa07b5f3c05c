"""Hugging Face Jobs, the generic part: hardware flavors, job stages, timeouts, and the calls that read a job back.

What a job runs and how a run is split into shards is annotate's (`annotate.executors.jobs`); this module only
knows HF Jobs itself, so every folder that submits or follows a job can use it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, cast

from ._api import get_api
from .errors import hub_errors

if TYPE_CHECKING:
    from huggingface_hub import HfApi, JobInfo

# HF Jobs hardware (huggingface_hub's `JobHardware`, which the Hub keeps in sync with its API).
Flavor = Literal[
    "cpu-basic", "cpu-upgrade", "cpu-performance", "cpu-xl",
    "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "l40sx4", "l40sx8",
    "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "a100x4", "a100x8",
    "h200", "h200x2", "h200x4", "h200x8", "rtx-pro-6000", "rtx-pro-6000x2", "rtx-pro-6000x4", "rtx-pro-6000x8",
]
# A job's stage as the Hub reports it (huggingface_hub's `JobStage`), plus our DRY_RUN for a spec not submitted.
JobStage = Literal["SCHEDULING", "RUNNING", "COMPLETED", "CANCELED", "ERROR", "DELETED", "DRY_RUN"]
TERMINAL_STAGES: tuple[JobStage, ...] = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
RUN_ID_ENV = "LEROBOT_KEYFRAMES_RUN_ID"  # set inside a job of this package; the dataset card records it


def known_flavors() -> frozenset[str]:
    """`Flavor`'s values, plus any newer ones the installed huggingface_hub knows."""
    flavors = set(typing.get_args(Flavor))
    try:
        from huggingface_hub import JobHardware
    except ImportError:  # an older huggingface_hub: our list alone
        return frozenset(flavors)
    return frozenset(flavors | {h.value for h in JobHardware})


def parse_timeout(value: str | int | float) -> int:
    """Seconds from `300`, `"300"`, `"5m"`, `"2h"`, `"1d"` (the units `huggingface_hub` accepts).

    Args:
        value (`str`, `int` or `float`):
            Seconds, or a number with an `s`, `m`, `h` or `d` suffix.

    Raises:
        `ValueError`: the value is neither.
    """
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    factors = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in factors:
            return int(float(text[:-1]) * factors[text[-1]])
        return int(float(text))
    except ValueError:
        raise ValueError(f"bad timeout {value!r}: use seconds or a number with s, m, h or d") from None


def job_stage(info: JobInfo) -> JobStage | None:
    """The stage of a `JobInfo` (`RUNNING`, `COMPLETED`, ...), or None when the Hub gave none."""
    stage = getattr(getattr(info, "status", None), "stage", None)
    return cast("JobStage", str(stage.value if hasattr(stage, "value") else stage)) if stage else None


def inspect_stage(job_id: str, namespace: str, api: HfApi | None = None, token: str | None = None) -> JobStage | None:
    """The current stage (RUNNING, COMPLETED, ERROR, ...) of job `job_id` of `namespace` (its user or org), from the
    Hub; `api` defaults to `HfApi(token=token)`."""
    api = get_api(api, token)
    with hub_errors("inspecting the job", token=token):
        info = api.inspect_job(job_id=job_id, namespace=namespace, token=token)
    return job_stage(info)


def stream_logs(job_id: str, namespace: str, api: HfApi | None = None, *, token: str | None = None,
                print_fn: Callable[[str], None] = print) -> None:
    """Each log line of job `job_id` of `namespace` to `print_fn` as it comes, until the job ends; `api` defaults to
    `HfApi(token=token)`."""
    api = get_api(api, token)
    with hub_errors("following the job logs", token=token):
        for line in api.fetch_job_logs(job_id=job_id, namespace=namespace, follow=True, token=token):
            print_fn(line)
