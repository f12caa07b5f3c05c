"""Where a dataset comes from: a local root, or a Hub repo fetched with `snapshot_download`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..utils.hub_errors import OFFLINE_FIX, hub_errors
from .errors import DatasetFormatError
from .records import Episode

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

        missing = [p for p in relative_paths if not (self.root / p).exists()]
        if not missing:
            return
        if _offline():
            raise DatasetFormatError(
                f"{self.repo_id}@{self.revision}: {len(missing)} file(s) the chosen cameras need are not in the "
                f"cache (first: {missing[0]}) and HF_HUB_OFFLINE=1; run once online, or pass cameras=[...] to "
                "choose cameras that are cached")
        logger.info("downloading %d file(s) of %s@%s", len(missing), self.repo_id, self.revision)
        with hub_errors("downloading the videos", repo_id=self.repo_id, revision=self.revision, fix=OFFLINE_FIX):
            snapshot_download(self.repo_id, repo_type="dataset", revision=self.revision, allow_patterns=missing)


def fetch_episode_videos(episodes: Sequence[Episode], cameras: Sequence[str] | None = None) -> None:
    """Download the videos of `cameras` (all when None) that episodes of a Hub dataset need and the
    snapshot lacks, so `load_episodes("user/name")` rows decode without `download_videos=True`."""
    by_source: dict[tuple[str, str | None, str], set[str]] = {}
    for ep in episodes:
        if not ep.repo_id or not ep.root:
            continue
        for cam in ep.cameras:
            if cam.storage == "video" and (cameras is None or cam.key in cameras):
                if not (Path(ep.root) / cam.path).exists():
                    by_source.setdefault((ep.repo_id, ep.revision, ep.root), set()).add(cam.path)
    for (repo_id, revision, root), paths in by_source.items():
        ResolvedSource(root=Path(root), repo_id=repo_id, revision=revision).fetch_files(sorted(paths))


def is_local(source: str | Path) -> bool:
    return Path(source).expanduser().exists()


def _offline() -> bool:
    import huggingface_hub.constants as hf_constants

    return bool(hf_constants.HF_HUB_OFFLINE)


def cached_revision(repo_id: str) -> str | None:
    """Offline: the `v3.0` tag if the cache has a snapshot for it, else `main`, else None (nothing cached)."""
    from huggingface_hub import try_to_load_from_cache

    for rev in (CODEBASE_TAG, "main"):
        if isinstance(try_to_load_from_cache(repo_id, "meta/info.json", revision=rev, repo_type="dataset"), str):
            return rev
    return None


def resolve_revision(repo_id: str, revision: str | None) -> str:
    """The requested revision, else the `v3.0` codebase tag when the repo has one, else `main`.

    Offline (`HF_HUB_OFFLINE=1`), like huggingface_hub: the cached snapshot of the `v3.0` tag, else of `main`."""
    if revision is not None:
        return revision
    if _offline():
        cached = cached_revision(repo_id)
        if cached is None:
            raise DatasetFormatError(
                f"{repo_id}: not in the Hugging Face cache and HF_HUB_OFFLINE=1; run once online (or unset "
                "HF_HUB_OFFLINE) to download it, or pass a local dataset root")
        return cached
    import huggingface_hub.constants as hf_constants
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    # one request, with huggingface_hub's metadata timeout: a Hub that accepts and never answers is an error, not a hang
    with hub_errors("reading the dataset's tags", repo_id=repo_id, fix=OFFLINE_FIX):
        try:
            HfApi().dataset_info(repo_id, revision=CODEBASE_TAG, timeout=hf_constants.HF_HUB_ETAG_TIMEOUT)
        except RevisionNotFoundError:
            return "main"
        except RepositoryNotFoundError:
            raise DatasetFormatError(
                f"{repo_id}: no such dataset on the Hub (or it is private and you are not logged in: hf auth "
                "login); for a local dataset pass its directory") from None
    return CODEBASE_TAG


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
    logger.debug("fetching meta and data of %s@%s", repo_id, rev)
    with hub_errors("downloading the dataset's meta and data", repo_id=repo_id, revision=rev, fix=OFFLINE_FIX):
        root = snapshot_download(repo_id, repo_type="dataset", revision=rev, allow_patterns=list(META_PATTERNS))
    return ResolvedSource(root=Path(root), repo_id=repo_id, revision=rev)
