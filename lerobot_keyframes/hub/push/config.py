"""`PushConfig`: the flags of `lerobot-keyframes push` (names follow `annotate`), and `run_push`, their runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import HubError
from .dataset import PushResult
from .entry import push_dataset

if TYPE_CHECKING:
    from huggingface_hub import HfApi


@dataclass(frozen=True)
class PushConfig:
    """`lerobot-keyframes push`: which dataset root goes to which repo (flag names follow `annotate`)."""

    root: Path | None = None
    new_repo_id: str | None = None  # the target repo
    repo_id: str | None = None  # the source dataset on the Hub, if the root came from one
    revision: str | None = None  # source revision (to fetch files the root lacks)
    branch: str = "main"  # target branch
    private: bool | None = None  # default: private; public only if the source is known public
    allow_source_overwrite: bool = False
    provenance: Path | None = None  # JSON file with the annotation provenance for the card
    commit_message: str | None = None
    tag: bool = True  # recreate the codebase-version tag (on main)
    allow_row_loss: bool = False  # push even if an episode of the target loses its language rows (refused by default)
    create_pr: bool = False  # open a pull request on --new_repo_id (the source) with data + meta only, no video


def run_push(config: PushConfig, *, token: str | None = None, api: HfApi | None = None) -> PushResult:
    """`push_dataset` from a `PushConfig` (the CLI's entry point).

    Args:
        config (`PushConfig`):
            The parsed `push` flags.
        token (`str`, *optional*):
            The Hugging Face token.
        api (`HfApi`, *optional*):
            The client (default: `HfApi(token=token)`).

    Raises:
        `HubError`: no root or target, an unreadable provenance file, or a refused or failed push.
    """
    target = config.new_repo_id or (config.repo_id if config.create_pr else None)  # a pull request: on the source
    if config.root is None or target is None:
        raise HubError("push needs --root=<dataset root> and --new_repo_id=<user>/<name> (or --create_pr=true and "
                       "--repo_id=<the source>)")
    provenance = None
    if config.provenance is not None:
        try:
            provenance = json.loads(Path(config.provenance).read_text())
        except (OSError, ValueError) as exc:
            raise HubError(f"{config.provenance}: cannot read the provenance JSON ({exc})") from None
    return push_dataset(
        config.root, target, private=config.private, source_repo_id=config.repo_id,
        allow_source_overwrite=config.allow_source_overwrite, provenance=provenance, revision=config.branch,
        token=token, api=api, commit_message=config.commit_message, tag=config.tag and config.branch == "main",
        source_revision=config.revision, allow_row_loss=config.allow_row_loss, create_pr=config.create_pr,
    )
