"""Where a dataset comes from: a local root, or a Hub repo fetched with `snapshot_download`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetFormatError

logger = logging.getLogger(__name__)

CODEBASE_TAG = "v3.0"
META_PATTERNS = ("meta/**", "data/**", "README.md")


@dataclass(frozen=True)
class ResolvedSource:
    """A dataset root on local disk, plus the Hub repo and revision it came from (if any)."""

    root: Path
    repo_id: str | None = None
    revision: str | None = None

    def fetch_files(self, relative_paths: Sequence[str]) -> None:
        """Download more files of a Hub dataset (e.g. the videos of the chosen cameras) into the same snapshot."""
        if self.repo_id is None or not relative_paths:
            return
        from huggingface_hub import snapshot_download

        logger.info("downloading %d file(s) of %s@%s", len(relative_paths), self.repo_id, self.revision)
        snapshot_download(
            self.repo_id, repo_type="dataset", revision=self.revision, allow_patterns=list(relative_paths)
        )


def is_local(source: str | Path) -> bool:
    return Path(source).expanduser().exists()


def resolve_revision(repo_id: str, revision: str | None) -> str:
    """The requested revision, else the `v3.0` codebase tag when the repo has one, else `main`."""
    if revision is not None:
        return revision
    from huggingface_hub import HfApi

    refs = HfApi().list_repo_refs(repo_id, repo_type="dataset")
    tags = {t.name for t in refs.tags}
    return CODEBASE_TAG if CODEBASE_TAG in tags else "main"


def resolve_source(source: str | Path, *, revision: str | None = None) -> ResolvedSource:
    """A local root is used as is; anything else is a Hub dataset repo id (meta + data are downloaded)."""
    if is_local(source):
        return ResolvedSource(root=Path(source).expanduser().resolve())
    repo_id = str(source)
    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".", "~")):
        raise DatasetFormatError(
            f"{source}: no such local directory, and not a Hub repo id of the form 'user/name'"
        )
    from huggingface_hub import snapshot_download

    rev = resolve_revision(repo_id, revision)
    logger.info("fetching meta and data of %s@%s", repo_id, rev)
    root = snapshot_download(repo_id, repo_type="dataset", revision=rev, allow_patterns=list(META_PATTERNS))
    return ResolvedSource(root=Path(root), repo_id=repo_id, revision=rev)
