"""The `annotate` argv a job runs: reading its flags, dropping the `--job.*` ones, refusing what cannot work remotely."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from ....hub._api import REPO_TYPE, get_api
from ....hub.errors import TOKEN_PATTERN, HubError, hub_errors

if TYPE_CHECKING:
    from huggingface_hub import HfApi

# Flags the shard jobs add to the annotate command line.
EPISODES_FLAG = "--only_episodes"
PUSH_BRANCH_FLAG = "--push_branch"
STAGING_ONLY_FLAG = "--push_staging_only"
LOCAL_ONLY_FLAGS = ("--root",)
PATH_FLAGS = ("--repo_id", "--vlm.model_id")
SECRET_FLAGS = ("--vlm.api_key",)


class JobRepos(TypedDict):
    """The repos an annotate argv names: the Hub source (`--repo_id`) and the target (`--new_repo_id`)."""

    source: str
    target: str | None


def flag_values(args: Sequence[str]) -> dict[str, list[str | None]]:
    """`--flag=value` and `--flag value` pairs (repeated flags kept in order); bare flags map to None."""
    out: dict[str, list[str | None]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, eq, text = arg.partition("=")
            value: str | None = text
            if not eq:
                nxt = args[i + 1] if i + 1 < len(args) else None
                if nxt is not None and not nxt.startswith("--"):
                    value, i = nxt, i + 1
                else:
                    value = None
            out.setdefault(name, []).append(value)
        i += 1
    return out


def last_value(values: Mapping[str, list[str | None]], flag: str) -> str | None:
    """The value of the last `flag` in `values` (what argparse keeps), or None."""
    found = values.get(flag)
    return found[-1] if found else None


def _truthy(value: str | None) -> bool:
    """`--push_to_hub=true`, or the bare `--push_to_hub` (None here), which `annotate` reads as true."""
    return value is None or value.strip().lower() in ("1", "true", "yes", "on")


def without_flags(args: Sequence[str], flags: Sequence[str]) -> list[str]:
    """`args` without the given flags (both `--f=v` and `--f v` forms)."""
    out: list[str] = []
    skip_next = False
    for i, arg in enumerate(args):
        if skip_next:
            skip_next = False
            continue
        name, eq, _ = arg.partition("=")
        if name in flags:
            if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
                skip_next = True
            continue
        out.append(arg)
    return out


def strip_job_flags(argv: Sequence[str]) -> list[str]:
    """`annotate` argv without the `--job.*` and `--shards` flags: what the job itself must run.

    For `annotate ... --job.flavor=l4x1`: the annotate command submits `strip_job_flags(argv)` instead of
    running locally (see `cli.annotate.add_job_flags` / `job_config_from_args`).

    Args:
        argv (`Sequence[str]`):
            The flags after `annotate` on the command line.
    """
    flags = [a.partition("=")[0] for a in argv if a.startswith("--job.")]
    return without_flags([a for a in argv if a != "--"], [*flags, "--shards"])


def _check_no_secrets(args: Sequence[str], values: Mapping[str, list[str | None]]) -> None:
    for flag in SECRET_FLAGS:
        if any(v not in (None, "EMPTY") for v in values.get(flag, ())):  # lerobot's EMPTY key is no secret
            raise HubError(f"{flag} would be visible in the job's command line; do not pass secrets as arguments "
                           "(HF_TOKEN is passed to the job as a secret automatically).")
    if any(TOKEN_PATTERN.search(a) for a in args):
        raise HubError("an argument looks like a Hugging Face token; tokens must never be passed as arguments "
                       "(HF_TOKEN is passed to the job as a secret automatically).")


def _check_runs_remotely(values: Mapping[str, list[str | None]]) -> None:
    push = values.get("--push_to_hub")
    if not push or not _truthy(push[-1]):
        raise HubError("refusing to submit a job without --push_to_hub=true: the job's machine is discarded when it "
                       "ends, so its annotations would be thrown away. Add --push_to_hub=true (and --new_repo_id).")
    for flag in LOCAL_ONLY_FLAGS:
        if flag in values:
            raise HubError(f"refusing to submit a job with {flag}={last_value(values, flag)}: that is a path on this "
                           "machine and the job cannot see it. Push the dataset first (lerobot-keyframes push ...) "
                           "and pass --repo_id=<user>/<name>.")
    for flag in PATH_FLAGS:
        value = last_value(values, flag)
        if value and Path(value).expanduser().exists():
            raise HubError(f"refusing to submit a job with {flag}={value}: it is a local path on this machine and the "
                           "job cannot see it. Upload it to the Hub and pass its repo id.")


def check_annotate_args(args: Sequence[str], *, api: HfApi | None = None, token: str | None = None,
                        check_source: bool = True) -> JobRepos:
    """Refuse job arguments that would waste the run or cannot work remotely; returns the source and target.

    Args:
        args (`Sequence[str]`):
            The annotate flags the job would run.
        api (`HfApi`, *optional*):
            The client to check the source with (default: `HfApi(token=token)`).
        token (`str`, *optional*):
            The Hugging Face token.
        check_source (`bool`, *optional*, defaults to `True`):
            Whether to check over the network that the source dataset exists on the Hub.

    Raises:
        `HubError`: secrets in the arguments, no `--push_to_hub=true`, a local path, or a missing source.
    """
    values = flag_values(args)
    _check_no_secrets(args, values)
    _check_runs_remotely(values)
    source = last_value(values, "--repo_id")
    if not source or source.count("/") != 1:
        raise HubError("a job needs the source as a Hub dataset: pass --repo_id=<user>/<name> (local datasets cannot "
                       "be read by a job; push them first with lerobot-keyframes push).")
    if check_source:
        from huggingface_hub.errors import RepositoryNotFoundError

        api = get_api(api, token)
        with hub_errors("checking the source dataset", repo_id=source, token=token):
            try:
                api.repo_info(source, repo_type=REPO_TYPE, token=token)
            except RepositoryNotFoundError:
                raise HubError(f"the source dataset {source} is not on the Hub (or your token cannot see it); "
                               "a job can only read Hub datasets. Push it first with lerobot-keyframes push.",
                               status=404, repo_id=source) from None
    return {"source": source, "target": last_value(values, "--new_repo_id")}
