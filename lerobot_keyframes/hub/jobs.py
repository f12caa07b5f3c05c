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
and pushes its staging (see merge.py) to its own branch of the work repo; `resubmit_failed_shards` submits
again only the shards whose branch has no completion marker and whose job is not running.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from .. import __version__
from ..utils.files import atomic_write_json
from .errors import TOKEN_PATTERN, HubError, hub_errors

logger = logging.getLogger(__name__)

DEFAULT_IMAGE = "vllm/vllm-openai:latest"
DEFAULT_PACKAGE = f"lerobot_keyframes=={__version__}"
RUN_ID_ENV = "LEROBOT_KEYFRAMES_RUN_ID"
SHARD_ENV = "LEROBOT_KEYFRAMES_SHARD"  # "i/N" inside a shard job
PACKAGE_ENV = "LEROBOT_KEYFRAMES_PACKAGE"
# Flags the shard jobs add to the annotate command line.
EPISODES_FLAG = "--only_episodes"
PUSH_BRANCH_FLAG = "--push_branch"
STAGING_ONLY_FLAG = "--push_staging_only"
# Installs the package into the image's Python (keeping the image's vLLM and torch), then runs annotate.
BOOTSTRAP = (
    'set -euo pipefail; '
    'if command -v uv >/dev/null 2>&1; then uv pip install --system "$' + PACKAGE_ENV + '"; '
    'else python3 -m pip install --no-cache-dir "$' + PACKAGE_ENV + '"; fi; '
    'exec python3 -m lerobot_keyframes.cli annotate "$@"'
)
LOCAL_ONLY_FLAGS = ("--root",)
PATH_FLAGS = ("--repo_id", "--vlm.model_id")
SECRET_FLAGS = ("--vlm.api_key",)
TERMINAL_STAGES = ("COMPLETED", "CANCELED", "ERROR", "DELETED")
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class JobConfig:
    """Where and how the annotation job runs on Hugging Face Jobs (`--job.*` flags)."""

    # lerobot-annotate's `--job.target=<flavor>` is our `--job.flavor` (`local` / unset: run here, no job).
    FLAG_ALIASES: ClassVar[dict[str, str]] = {"target": "flavor"}

    flavor: str = "l4x1"  # HF Jobs hardware, e.g. l4x1|a10g-large|a100-large|h200 (annotate: unset or local runs here)
    timeout: str = "2h"  # always set: s, m, h or d suffix, or seconds
    image: str = DEFAULT_IMAGE  # Docker image the job runs in (run_job: needs python3 and vLLM inside)
    runner: str = "run_job"  # run_job: the image's own vLLM | uv: run_uv_job(script)
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
        if self.runner not in ("run_job", "uv"):
            raise ValueError(f"--job.runner must be run_job or uv, got {self.runner!r}")
        if parse_timeout(self.timeout) <= 0:
            raise ValueError(f"--job.timeout must be positive, got {self.timeout!r}")
        if self.shards < 1:
            raise ValueError(f"--job.shards must be >= 1, got {self.shards}")
        for item in (*self.labels, *self.env):
            if "=" not in item:
                raise ValueError(f"expected KEY=VALUE, got {item!r}")


@dataclass(frozen=True)
class Shard:
    index: int
    episodes: tuple[int, ...]
    frames: int


@dataclass
class JobHandle:
    """A submitted job: its id and URL (printed at submission), and for shards the episodes and branch."""

    job_id: str
    url: str
    namespace: str
    run_id: str
    stage: str | None = None
    shard: int | None = None
    num_shards: int | None = None
    branch: str | None = None
    episodes: tuple[int, ...] | None = None
    frames: int | None = None

    def refresh(self, api: Any = None, token: str | None = None) -> str | None:
        """The job's current stage (RUNNING, COMPLETED, ERROR, ...) from the Hub."""
        api = _api(api, token)
        with hub_errors("inspecting the job", token=token):
            info = api.inspect_job(job_id=self.job_id, namespace=self.namespace, token=token)
        self.stage = str(getattr(info.status, "stage", None) or "") or None
        return self.stage


@dataclass
class ShardedRun:
    """The record of a sharded run (saved as JSON) so failed shards can be resubmitted and merged later."""

    run_id: str
    source_repo_id: str
    work_repo_id: str
    target_repo_id: str | None
    annotate_args: list[str]
    config: dict[str, Any]
    shards: list[JobHandle] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> ShardedRun:
        data = json.loads(Path(path).read_text())
        shards = [JobHandle(**{**s, "episodes": tuple(s["episodes"]) if s.get("episodes") is not None else None})
                  for s in data.pop("shards")]
        return cls(**data, shards=shards)

    @property
    def branches(self) -> list[str]:
        return [s.branch for s in self.shards if s.branch]


# -- arguments ---------------------------------------------------------------------------------------
def parse_timeout(value: str | int | float) -> int:
    """Seconds from `300`, `"300"`, `"5m"`, `"2h"`, `"1d"` (the units `huggingface_hub` accepts)."""
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


def flag_values(args: Sequence[str]) -> dict[str, list[str | None]]:
    """`--flag=value` and `--flag value` pairs (repeated flags kept in order); bare flags map to None."""
    out: dict[str, list[str | None]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if not eq:
                nxt = args[i + 1] if i + 1 < len(args) else None
                if nxt is not None and not nxt.startswith("--"):
                    value, i = nxt, i + 1
                else:
                    value = None  # type: ignore[assignment]
            out.setdefault(name, []).append(value)
        i += 1
    return out


def _last(values: Mapping[str, list[str | None]], flag: str) -> str | None:
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
    running locally (see `add_job_flags` / `job_config_from_args`)."""
    flags = [a.partition("=")[0] for a in argv if a.startswith("--job.")]
    return without_flags([a for a in argv if a != "--"], [*flags, "--shards"])


def add_job_flags(parser: Any) -> None:
    """Add the `--job.*` flags (one per JobConfig field) to an argparse parser."""
    from ..cli_flags import add_dataclass_flags

    add_dataclass_flags(parser, "job", JobConfig)


def job_config_from_args(args: Any) -> JobConfig | None:
    """The JobConfig of parsed `--job.*` flags, or None when no `--job.*` flag was given (run locally)."""
    import dataclasses

    from ..cli_flags import dataclass_from_flags

    if not any(hasattr(args, f"job.{f.name}") for f in dataclasses.fields(JobConfig)):
        return None
    if getattr(args, "job.flavor", None) in (None, "local"):  # lerobot-annotate: no --job.target runs here
        given = sorted(f"--job.{f.name}" for f in dataclasses.fields(JobConfig)
                       if hasattr(args, f"job.{f.name}") and f.name != "flavor")
        if given:
            logger.warning("%s: no effect without --job.target=<flavor> (or --job.flavor): running here",
                           ", ".join(given))
        return None
    return dataclass_from_flags(args, "job", JobConfig)


def check_annotate_args(args: Sequence[str], *, api: Any = None, token: str | None = None,
                        check_source: bool = True) -> dict[str, str | None]:
    """Refuse job arguments that would waste the run or cannot work remotely; returns source/target repo ids."""
    values = flag_values(args)
    for flag in SECRET_FLAGS:
        if any(v not in (None, "EMPTY") for v in values.get(flag, ())):  # lerobot's EMPTY key is no secret
            raise HubError(f"{flag} would be visible in the job's command line; do not pass secrets as arguments "
                           "(HF_TOKEN is passed to the job as a secret automatically).")
    if any(TOKEN_PATTERN.search(a) for a in args):
        raise HubError("an argument looks like a Hugging Face token; tokens must never be passed as arguments "
                       "(HF_TOKEN is passed to the job as a secret automatically).")
    push = values.get("--push_to_hub")
    if not push or not _truthy(push[-1]):
        raise HubError("refusing to submit a job without --push_to_hub=true: the job's machine is discarded when it "
                       "ends, so its annotations would be thrown away. Add --push_to_hub=true (and --new_repo_id).")
    for flag in LOCAL_ONLY_FLAGS:
        if flag in values:
            raise HubError(f"refusing to submit a job with {flag}={_last(values, flag)}: that is a path on this machine "
                           "and the job cannot see it. Push the dataset first (lerobot-keyframes push ...) and pass "
                           "--repo_id=<user>/<name>.")
    for flag in PATH_FLAGS:
        value = _last(values, flag)
        if value and Path(value).expanduser().exists():
            raise HubError(f"refusing to submit a job with {flag}={value}: it is a local path on this machine and the "
                           "job cannot see it. Upload it to the Hub and pass its repo id.")
    source = _last(values, "--repo_id")
    if not source or source.count("/") != 1:
        raise HubError("a job needs the source as a Hub dataset: pass --repo_id=<user>/<name> (local datasets cannot "
                       "be read by a job; push them first with lerobot-keyframes push).")
    target = _last(values, "--new_repo_id")
    if check_source:
        from huggingface_hub.errors import RepositoryNotFoundError

        api = _api(api, token)
        with hub_errors("checking the source dataset", repo_id=source, token=token):
            try:
                api.repo_info(source, repo_type="dataset", token=token)
            except RepositoryNotFoundError:
                raise HubError(f"the source dataset {source} is not on the Hub (or your token cannot see it); "
                               "a job can only read Hub datasets. Push it first with lerobot-keyframes push.",
                               status=404, repo_id=source) from None
    return {"source": source, "target": target}


# -- submission --------------------------------------------------------------------------------------
def _api(api: Any, token: str | None) -> Any:
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi(token=token)


def _label(value: str) -> str:
    return _LABEL_BAD.sub("-", value).strip("-")[:63]


def _resolve_token(token: str | None) -> str:
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubError("HF Jobs needs a Hugging Face token with write access (the job pushes its result): set "
                       "HF_TOKEN or run `hf auth login`.")
    return found


def _pairs(items: Sequence[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def job_package() -> tuple[str, str | None]:
    """(the requirement a job installs to run the code running here, a warning when it cannot be this code).

    Installed from git (PEP 610 `direct_url.json` with `vcs_info`): that URL at that commit. Installed in
    site-packages otherwise: this version from PyPI. Running from a source tree (editable install,
    checkout on `sys.path`): the same version from PyPI, with a warning, since a job cannot reach this
    machine's files."""
    return package_requirement(_direct_url(), Path(__file__).resolve().parents[1])


def package_requirement(direct: Mapping[str, Any] | None, location: Path) -> tuple[str, str | None]:
    """`job_package` for a given PEP 610 record and package folder."""
    pin = DEFAULT_PACKAGE
    url = str((direct or {}).get("url", ""))
    if direct and not url.startswith("file:"):
        vcs = direct.get("vcs_info") or {}
        if vcs.get("vcs") == "git" and vcs.get("commit_id"):
            return f"lerobot_keyframes @ git+{url}@{vcs['commit_id']}", None
        if "archive_info" in direct:
            return f"lerobot_keyframes @ {url}", None
    if {"site-packages", "dist-packages"} & set(location.parts) and not url.startswith("file:"):
        return pin, None
    return pin, (
        f"lerobot_keyframes runs from {url or location} on this machine, which the job cannot install: it "
        f"installs {pin} from PyPI instead. To run this exact code, push it and pass "
        "--job.package='lerobot_keyframes @ git+https://<host>/<repo>@<commit>'."
    )


def with_package(config: JobConfig, print_fn: Callable[[str], None] = print) -> JobConfig:
    """`config` with `package` resolved (`job_package()` when unset), saying once why it may differ from
    the code running here."""
    if config.package:
        return config
    package, warning = job_package()
    if warning:
        print_fn(f"warning: {warning}")
    return replace(config, package=package)


def _direct_url() -> dict[str, Any] | None:
    """PEP 610 origin of the installed distribution whose files include this module, if recorded."""
    from importlib import metadata

    try:
        dist = metadata.distribution("lerobot_keyframes")
        files = [Path(str(dist.locate_file(f))).resolve() for f in (dist.files or []) if f.name == "jobs.py"]
        if Path(__file__).resolve() not in files:  # another copy (e.g. a source tree first on sys.path)
            return None
        text = dist.read_text("direct_url.json")
    except (metadata.PackageNotFoundError, OSError):
        return None
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def submit_annotation_job(
    config: JobConfig,
    annotate_args: Sequence[str],
    api: Any = None,
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

    `api` is an `HfApi` (or anything with `run_job`/`run_uv_job`, `repo_info`, `fetch_job_logs`,
    `inspect_job`), injectable for tests. Raises `HubError` for refused runs and Hub failures.
    """
    args = [a for a in annotate_args if a != "--"]
    repos = check_annotate_args(args, api=api, token=token, check_source=check_source and not config.dry_run)
    if not config.dry_run:
        api = _api(api, token)
    secret = "<HF_TOKEN>" if config.dry_run else _resolve_token(token)
    run_id = run_id or uuid.uuid4().hex[:12]
    if "--vlm.backend" not in flag_values(args):
        args.append("--vlm.backend=vllm")
    if shard is not None:
        args = without_flags(args, (EPISODES_FLAG, PUSH_BRANCH_FLAG, STAGING_ONLY_FLAG))
        args += [f"{EPISODES_FLAG}={','.join(map(str, shard.episodes))}", f"{PUSH_BRANCH_FLAG}={branch}",
                 f"{STAGING_ONLY_FLAG}=true"]
    env = {RUN_ID_ENV: run_id, "PYTHONUNBUFFERED": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", **_pairs(config.env)}
    if shard is not None:
        env[SHARD_ENV] = f"{shard.index}/{num_shards}"
    if any(TOKEN_PATTERN.search(v) for v in env.values()) or "HF_TOKEN" in env:
        raise HubError("--job.env must not carry tokens; HF_TOKEN is passed as a secret automatically.")
    labels = {"app": "lerobot-keyframes", "lerobot-keyframes-run": run_id, "source": _label(repos["source"] or "")}
    if repos["target"]:
        labels["target"] = _label(repos["target"])
    if shard is not None:
        labels["shard"] = f"{shard.index}-of-{num_shards}"
    labels.update(dict.fromkeys(config.tags, "true"))
    labels.update(_pairs(config.labels))
    if config.lerobot_ref is not None:
        print_fn(f"warning: --job.lerobot_ref={config.lerobot_ref} is accepted for lerobot-annotate compatibility but "
                 "not applied: the job installs lerobot_keyframes (--job.package), not lerobot from git")
    name = f"lerobot-keyframes-{run_id}" + (f"-shard-{shard.index}" if shard is not None else "")
    common: dict[str, Any] = {
        "image": config.image, "env": env, "secrets": {"HF_TOKEN": secret}, "flavor": config.flavor,
        "timeout": config.timeout, "labels": labels, "name": name, "namespace": config.namespace,
    }
    if config.attempts is not None:
        common["attempts"] = config.attempts
    if config.dry_run:
        return _print_dry_run(config, common, args, run_id, print_fn, shard=shard, num_shards=num_shards,
                              branch=branch)
    with hub_errors("submitting the job", token=secret):
        if config.runner == "uv":
            if not config.script:
                raise HubError("--job.runner=uv needs --job.script=<URL of hub_scripts/annotate.py> (a URL the job "
                               "can download, e.g. the raw file on the Hub or GitHub at a pinned revision).")
            info = api.run_uv_job(config.script, script_args=args, **common)
        else:
            env[PACKAGE_ENV] = with_package(config, print_fn).package
            info = api.run_job(command=["bash", "-c", BOOTSTRAP, "lerobot-keyframes-job", *args], **common)
    owner = getattr(getattr(info, "owner", None), "name", None) or config.namespace or ""
    handle = JobHandle(
        job_id=info.id, url=info.url, namespace=owner, run_id=run_id,
        stage=str(getattr(getattr(info, "status", None), "stage", "") or "") or None,
        shard=shard.index if shard is not None else None, num_shards=num_shards, branch=branch,
        episodes=shard.episodes if shard is not None else None, frames=shard.frames if shard is not None else None,
    )
    what = f"shard {shard.index + 1}/{num_shards} ({len(shard.episodes)} episodes, {shard.frames} frames)" if shard else "job"
    print_fn(f"Submitted {what}: {handle.job_id}\n  url: {handle.url}")
    if not config.detach and shard is None:
        follow_logs(handle, api, token=secret, print_fn=print_fn)
    return handle


def _print_dry_run(config: JobConfig, common: dict[str, Any], args: Sequence[str], run_id: str,
                   print_fn: Callable[[str], None], *, shard: Shard | None, num_shards: int | None,
                   branch: str | None) -> JobHandle:
    """What `--job.dry_run=true` prints instead of submitting: the exact spec, secrets by name only."""
    spec = {k: v for k, v in common.items() if k != "secrets"}
    spec["secrets"] = sorted(common["secrets"])  # names only, never values
    if config.runner == "uv":
        spec.update(runner="run_uv_job", script=config.script, script_args=list(args))
    else:
        package = with_package(config, print_fn).package
        spec["env"] = {**spec["env"], PACKAGE_ENV: package}
        spec.update(runner="run_job", command=["bash", "-c", BOOTSTRAP, "lerobot-keyframes-job", *args])
    print_fn("dry run (nothing submitted): " + json.dumps(spec, indent=2, sort_keys=True))
    return JobHandle(job_id="dry-run", url="", namespace=config.namespace or "", run_id=run_id, stage="DRY_RUN",
                     shard=shard.index if shard is not None else None, num_shards=num_shards, branch=branch,
                     episodes=shard.episodes if shard is not None else None,
                     frames=shard.frames if shard is not None else None)


def follow_logs(handle: JobHandle, api: Any = None, *, token: str | None = None,
                print_fn: Callable[[str], None] = print) -> str | None:
    """Stream the job's logs until it ends; returns its final stage."""
    api = _api(api, token)
    with hub_errors("following the job logs", token=token):
        for line in api.fetch_job_logs(job_id=handle.job_id, namespace=handle.namespace, follow=True, token=token):
            print_fn(line)
    return handle.refresh(api, token)


# -- shards ------------------------------------------------------------------------------------------
def plan_shards(lengths: Mapping[int, int] | Sequence[int], num_shards: int) -> list[Shard]:
    """Split episodes into `num_shards` shards with balanced frame totals (longest episode first, each to
    the lightest shard; ties go to the lower index). Deterministic; never returns an empty shard."""
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


def episode_lengths(repo_id: str, *, revision: str | None = None, api: Any = None,
                    token: str | None = None) -> dict[int, int]:
    """episode_index -> frames, from the source's meta/episodes (only meta is downloaded)."""
    import pyarrow.parquet as pq

    from ..dataset.source import resolve_revision

    api = _api(api, token)
    with hub_errors("reading the episode lengths", repo_id=repo_id, revision=revision, token=token):
        rev = resolve_revision(repo_id, revision)
        root = Path(api.snapshot_download(repo_id, repo_type="dataset", revision=rev,
                                          allow_patterns=["meta/episodes/**", "meta/info.json"], token=token))
    out: dict[int, int] = {}
    for path in sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(path, columns=["episode_index", "length"])
        out.update(zip(table["episode_index"].to_pylist(), table["length"].to_pylist()))
    if not out:
        raise HubError(f"{repo_id}@{rev}: no meta/episodes/*/*.parquet; is it a LeRobot v3 dataset?", repo_id=repo_id)
    return out


def shard_branch(run_id: str, index: int, num_shards: int) -> str:
    return f"lerobot-keyframes-{run_id}-shard-{index:03d}-of-{num_shards:03d}"


def submit_sharded_annotation(
    config: JobConfig,
    annotate_args: Sequence[str],
    api: Any = None,
    *,
    token: str | None = None,
    lengths: Mapping[int, int] | None = None,
    run_file: str | Path | None = None,
    print_fn: Callable[[str], None] = print,
) -> ShardedRun:
    """Submit `config.shards` jobs, one per frame-balanced shard, each pushing to its own branch (detached).

    `run_file` (may contain `{run_id}`) receives the run record after every submission.
    """
    args = [a for a in annotate_args if a != "--"]
    repos = check_annotate_args(args, api=api, token=token)
    api = _api(api, token)
    work_repo = config.work_repo_id or repos["target"]
    if not work_repo:
        raise HubError("a sharded run needs --new_repo_id (the final dataset) or --job.work_repo_id (where the shards "
                       "push their branches).")
    source = repos["source"] or ""
    if lengths is None:
        values = flag_values(args)
        lengths = episode_lengths(source, revision=_last(values, "--revision"), api=api, token=token)
        only = _last(values, EPISODES_FLAG)
        if only:
            wanted = {int(v) for v in only.split(",") if v.strip()}
            lengths = {e: n for e, n in lengths.items() if e in wanted}
    shards = plan_shards(lengths, config.shards)
    if config.runner != "uv":  # resolved once: every shard (and a resubmission) installs the same package
        config = with_package(config, print_fn)
    run_id = uuid.uuid4().hex[:12]
    if run_file is not None:
        run_file = Path(str(run_file).replace("{run_id}", run_id))
    run = ShardedRun(run_id=run_id, source_repo_id=source, work_repo_id=work_repo, target_repo_id=repos["target"],
                     annotate_args=args, config=json.loads(json.dumps(asdict(config))))
    shard_args = without_flags(args, ("--new_repo_id",)) + [f"--new_repo_id={work_repo}"]
    detached = replace(config, detach=True)
    for shard in shards:
        branch = shard_branch(run_id, shard.index, len(shards))
        handle = submit_annotation_job(detached, shard_args, api, token=token, run_id=run_id, shard=shard,
                                       num_shards=len(shards), branch=branch, print_fn=print_fn, check_source=False)
        run.shards.append(handle)
        if run_file is not None and not config.dry_run:
            run.save(run_file)  # after every submission: a crash mid-way still leaves a usable record
    print_fn(f"Run {run_id}: {len(shards)} shard jobs; frames per shard {[s.frames for s in shards]}"
             + (f"\n  record: {run_file} (resubmit failed shards: lerobot-keyframes job --resubmit_failed {run_file})"
                if run_file is not None else ""))
    return run


def shard_complete(api: Any, repo_id: str, branch: str, token: str | None = None) -> bool:
    """Whether the shard's branch carries its completion marker (see merge.SHARD_MARKER)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    from .merge import SHARD_MARKER

    with hub_errors("checking a shard branch", repo_id=repo_id, revision=branch, token=token):
        try:
            found = api.get_paths_info(repo_id, [SHARD_MARKER], revision=branch, repo_type="dataset", token=token)
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return False
    return any(getattr(f, "path", None) == SHARD_MARKER for f in found)


def resubmit_failed_shards(
    run: ShardedRun,
    api: Any = None,
    *,
    token: str | None = None,
    config: JobConfig | None = None,
    run_file: str | Path | None = None,
    print_fn: Callable[[str], None] = print,
) -> list[int]:
    """Resubmit the shards that did not finish (no marker on their branch, job not scheduled or running).

    Returns the indices resubmitted; `run` is updated in place (new job ids) and saved to `run_file`.
    """
    api = _api(api, token)
    config = replace(config or JobConfig(**{**run.config, "labels": tuple(run.config.get("labels", ())),
                                            "env": tuple(run.config.get("env", ()))}), detach=True)
    shard_args = without_flags(run.annotate_args, ("--new_repo_id",)) + [f"--new_repo_id={run.work_repo_id}"]
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
        new = submit_annotation_job(config, shard_args, api, token=token, run_id=run.run_id, shard=shard,
                                    num_shards=handle.num_shards or len(run.shards), branch=handle.branch,
                                    print_fn=print_fn, check_source=False)
        run.shards[i] = new
        resubmitted.append(shard.index)
        if run_file is not None:
            run.save(run_file)
    if not resubmitted:
        print_fn(f"Run {run.run_id}: no failed shard to resubmit")
    return resubmitted
