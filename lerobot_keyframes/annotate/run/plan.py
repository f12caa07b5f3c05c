"""What a run is, decided once: its source, where it stages and writes, its keys and modules, where it pushes.

`plan_run(config, vlm_config, source)` computes a frozen `RunPlan` before any work, and every step after reads it:
preflight checks its paths and target, prepare locks and opens its staging, the executors stage under its keys,
the writer writes its output root, publish pushes to its target. No step derives a path, a key or a target from
the config again, so the local run, `datasets.map`, Ray and an HF Jobs shard cannot disagree about them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ...dataset.remote import VideoAccess, snapshot_commit
from ...hub.jobs import RUN_ID_ENV
from ..config import AnnotateConfig, ExecutorEngine
from ..modules.registry import RunModules, run_modules
from .keys import module_keys, source_identity

if TYPE_CHECKING:
    from ...dataset.source import ResolvedSource
    from ...vlm.config import VlmConfig

SHARD_ENV = "LEROBOT_KEYFRAMES_SHARD"  # "i/N" inside an HF Jobs shard job (set by `executors.jobs`)
RUN_RECORD_VERSION = 1

# dataset: the output root, one commit (card, v3.0 tag); pull_request: its data and meta files as a pull request;
# shard_staging: an HF Jobs shard's staging to its branch (`lerobot-keyframes merge` writes the dataset once)
PushMode = Literal["dataset", "pull_request", "shard_staging"]


@dataclass(frozen=True)
class PushPlan:
    """Where `--push_to_hub=true` goes, how, and what it must not overwrite."""

    repo_id: str
    mode: PushMode
    private: bool | None = None  # None: private unless the source is known public
    source_repo_id: str | None = None  # the source repo (`--repo_id`): never written without allow_source_overwrite
    allow_source_overwrite: bool = False
    allow_row_loss: bool = False
    commit_message: str | None = None
    branch: str | None = None  # shard_staging: the shard's branch of `repo_id`
    shard: int | None = None  # shard_staging: this shard's index, of `num_shards`, in run `run_id` (the job's env)
    num_shards: int | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class RunPlan:
    """A run, planned: read by preflight, prepare, staging, the executors, the writer and publish.

    `source` is the resolved source (None only for an `Annotator` made before a run: it reads each episode row's
    root); `modules` is the registry's view of the run (`modules.enabled`: the modules it runs, in run order);
    `keys` the staging key of every registered module. Pickles as its fields with `modules` rebuilt from `config`
    in the process that loads it (a Ray actor, a datasets.map worker).
    """

    config: AnnotateConfig
    source: ResolvedSource | None
    source_identity: str  # `keys.source_identity`: keys the staged work; recorded in the output's provenance
    source_commit: str | None  # the commit of a Hub snapshot (its videos are read at it)
    output_root: Path
    staging_dir: Path
    keys: dict[str, str]
    modules: RunModules
    push: PushPlan | None
    engine: ExecutorEngine  # local: this process (datasets.map); ray: Ray Data. A shard job: `push.mode`
    video_access: VideoAccess

    @property
    def writes_dataset(self) -> bool:
        """False in an HF Jobs shard: it stages and pushes its staging; `merge` writes the dataset once."""
        return self.push is None or self.push.mode != "shard_staging"

    @property
    def current_keys(self) -> dict[str, str]:
        """module -> key of the modules this run runs: what is assembled and written (never a stale or disabled one)."""
        return {m: self.keys[m] for m in self.modules.enabled_names}

    def record(self) -> dict[str, Any]:
        """What a run that wrote no dataset (an HF Jobs shard) leaves for the one that writes it (`merge`): its
        modules, their keys and the settings the writer reads. JSON; no path of this machine."""
        config = self.config
        return {
            "version": RUN_RECORD_VERSION,
            "modules": list(config.modules),  # a user's own modules, by `pkg.module:Class` or entry point name
            "enabled": self.modules.enabled_names,
            "keys": dict(self.keys),
            "replace_existing": config.replace_existing,
            "vqa": {"rotate_cameras": config.vqa.rotate_cameras, "image_cameras": config.vqa.image_cameras},
        }

    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "modules"}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for name, value in {**state, "modules": run_modules(state["config"])}.items():
            object.__setattr__(self, name, value)


def default_output_root(config: AnnotateConfig, source_root: Path) -> Path:
    if config.in_place:
        return source_root
    if config.out is not None:
        return Path(config.out)
    name = (config.repo_id or source_root.name).replace("/", "__")
    return Path.cwd() / f"{name}_annotated"


def default_staging_dir(out_root: Path) -> Path:
    """Beside the output root (`<out>.staging`), so rewriting the output never touches staged work."""
    absolute = Path(os.path.abspath(out_root))  # `--out=.` has no name of its own; its absolute form does
    if not absolute.name:
        raise ValueError(f"--out={out_root}: the file system root cannot be an output (its staging folder goes "
                         "beside it); choose a folder")
    return absolute.with_name(absolute.name + ".staging")


def push_target(config: AnnotateConfig) -> str:
    """Where --push_to_hub goes: --new_repo_id, else (a pull request, or --allow_source_overwrite) --repo_id."""
    if config.new_repo_id:
        return config.new_repo_id
    if config.repo_id and (config.allow_source_overwrite or config.create_pr):
        return config.repo_id
    raise ValueError("--push_to_hub=true needs --new_repo_id=<user/name> (the source repo is left untouched; "
                     "pass --create_pr=true for a pull request on --repo_id, or --allow_source_overwrite=true to "
                     "push back to it)")


def push_plan(config: AnnotateConfig, environ: Mapping[str, str] = os.environ) -> PushPlan | None:
    """The push of a run (None without --push_to_hub); a shard job's index and run id come from its environment."""
    if not config.push_to_hub:
        return None
    common = {"repo_id": push_target(config), "private": config.private, "source_repo_id": config.repo_id,
              "allow_source_overwrite": config.allow_source_overwrite, "allow_row_loss": config.allow_row_loss,
              "commit_message": config.push_commit_message}
    if not config.push_staging_only:
        return PushPlan(mode="pull_request" if config.create_pr else "dataset", **common)
    if not config.push_branch:
        raise ValueError("--push_staging_only=true needs --push_branch=<branch>")
    shard, _, num = environ.get(SHARD_ENV, "").partition("/")
    return PushPlan(mode="shard_staging", branch=config.push_branch, shard=int(shard) if shard else None,
                    num_shards=int(num) if num else None, run_id=environ.get(RUN_ID_ENV), **common)


def plan_run(config: AnnotateConfig, vlm_config: VlmConfig | None = None,
             source: ResolvedSource | None = None) -> RunPlan:
    """The plan of a run of `config` with `vlm_config` (its model keys the staged work) over `source`.

    Without a resolved `source` (an `Annotator` made before a run) a local root is taken as it resolves on disk,
    which is what `resolve_source` makes of it, so the paths are the run's. Unknown, clashing or broken modules
    and a push without a target raise here (`ModuleError`, `ValueError`), before any work."""
    modules = run_modules(config)
    identity = source_identity(config)
    if source is not None:
        root = source.root
    elif config.root is not None:
        root = Path(config.root).expanduser().resolve()
    else:  # a Hub source not fetched yet: the output is named after the repo (in place is refused for it)
        root = Path(str(config.repo_id).replace("/", "__"))
    output_root = default_output_root(config, root)
    commit = snapshot_commit(source.root) if source is not None and source.repo_id is not None else None
    return RunPlan(
        config=config, source=source, source_identity=identity, source_commit=commit, output_root=output_root,
        staging_dir=Path(config.staging_dir) if config.staging_dir else default_staging_dir(output_root),
        keys=module_keys(config, vlm_config, identity), modules=modules, push=push_plan(config),
        engine=config.executor.engine, video_access=config.video_access,
    )


__all__ = ["SHARD_ENV", "PushMode", "PushPlan", "RunPlan", "default_output_root", "default_staging_dir", "plan_run",
           "push_plan", "push_target"]
