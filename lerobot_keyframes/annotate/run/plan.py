"""Where a run reads, stages, writes and pushes: the output root, the staging folder and the push target.

Each is decided here, once, from the run's `AnnotateConfig` (and the resolved source root).
"""

from __future__ import annotations

from pathlib import Path

from ..config import AnnotateConfig

SHARD_ENV = "LEROBOT_KEYFRAMES_SHARD"  # "i/N" inside an HF Jobs shard job (set by `executors.jobs`)


def default_output_root(config: AnnotateConfig, source_root: Path) -> Path:
    if config.in_place:
        return source_root
    if config.out is not None:
        return Path(config.out)
    name = (config.repo_id or source_root.name).replace("/", "__")
    return Path.cwd() / f"{name}_annotated"


def default_staging_dir(out_root: Path) -> Path:
    """Beside the output root (`<out>.staging`), so rewriting the output never touches staged work."""
    return out_root.with_name(out_root.name + ".staging")


def push_target(config: AnnotateConfig) -> str:
    """Where --push_to_hub goes: --new_repo_id, else (a pull request, or --allow_source_overwrite) --repo_id."""
    if config.new_repo_id:
        return config.new_repo_id
    if config.repo_id and (config.allow_source_overwrite or config.create_pr):
        return config.repo_id
    raise ValueError("--push_to_hub=true needs --new_repo_id=<user/name> (the source repo is left untouched; "
                     "pass --create_pr=true for a pull request on --repo_id, or --allow_source_overwrite=true to "
                     "push back to it)")
