"""The Hub calls of a push: the repo and branch, the remote listing, files fetched or read, the version tag."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .._api import REPO_TYPE, repo_info
from ..errors import HubError, hub_errors
from .target import cache_snapshot

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import DatasetInfo, RepoFile

logger = logging.getLogger(__name__)


def ensure_repo(api: HfApi, repo_id: str, target: DatasetInfo | None, *, private: bool | None,
                token: str | None) -> tuple[bool, bool | None]:
    """Create the repo when `target` (its info) is None, private unless `private=False`.

    An existing repo's visibility is never changed. Returns (created, whether the repo is private).
    """
    if target is not None:
        is_private = getattr(target, "private", None)
        if private is not None and is_private is not None and private != is_private:
            logger.warning("%s already exists and is %s; its visibility is left unchanged", repo_id,
                           "private" if is_private else "public")
        return False, is_private
    want_private = True if private is None else private
    with hub_errors("creating the repo", repo_id=repo_id, token=token, write=True):
        api.create_repo(repo_id, repo_type=REPO_TYPE, private=want_private, exist_ok=True, token=token)
    created = repo_info(api, repo_id, revision=None, token=token)
    return True, want_private if created is None else getattr(created, "private", want_private)


def branch_head(api: HfApi, repo_id: str, branch: str, *, token: str | None, start: str | None = None) -> str:
    """The head commit of `repo_id@branch`, creating the branch (from `start`, else main) when it does not exist."""
    if branch != "main":
        with hub_errors("creating the branch", repo_id=repo_id, revision=branch, token=token, write=True):
            refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE, token=token)
            if branch not in {b.name for b in refs.branches}:
                api.create_branch(repo_id, branch=branch, revision=start, repo_type=REPO_TYPE, exist_ok=True,
                                  token=token)
    head = repo_info(api, repo_id, revision=branch, token=token)
    if head is None or not getattr(head, "sha", None):
        raise HubError(f"{repo_id}@{branch}: the repo exists but its head commit could not be read")
    return str(head.sha)


def list_remote(api: HfApi, repo_id: str, commit: str, token: str | None) -> dict[str, RepoFile]:
    """path -> `RepoFile` for every file of `repo_id` at `commit`."""
    from huggingface_hub.hf_api import RepoFile

    with hub_errors("listing remote files", repo_id=repo_id, revision=commit, token=token):
        return {
            f.path: f
            for f in api.list_repo_tree(repo_id, recursive=True, revision=commit, repo_type=REPO_TYPE, token=token)
            if isinstance(f, RepoFile)
        }


def download_text(api: HfApi, repo_id: str, filename: str, *, revision: str | None, token: str | None) -> str | None:
    """The text of one file of the repo, or None when it is absent or unreadable (a warning says why)."""
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        with hub_errors(f"downloading {filename}", repo_id=repo_id, revision=revision, token=token):
            try:
                path = api.hf_hub_download(repo_id, filename, repo_type=REPO_TYPE, revision=revision, token=token)
            except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
                return None
    except HubError as exc:
        logger.warning("could not read %s of %s: %s", filename, repo_id, exc)
        return None
    return Path(path).read_text(encoding="utf-8")


def fetch_missing(api: HfApi, root: Path, missing: list[str], source_repo_id: str, source_revision: str | None,
                  token: str | None) -> None:
    """Download `missing` files of the source: into the same cache snapshot when `root` is one, else into root."""
    from ...dataset.source import resolve_revision

    snapshot = cache_snapshot(root)
    if snapshot is not None and snapshot[0] == source_repo_id:
        rev, kwargs = snapshot[1], {"cache_dir": str(root.parents[2])}
    else:
        with hub_errors("resolving the source revision", repo_id=source_repo_id, token=token):
            rev = source_revision or resolve_revision(source_repo_id, None)
        kwargs = {"local_dir": str(root)}
    logger.info("fetching %d file(s) the local root lacks from %s@%s", len(missing), source_repo_id, rev)
    with hub_errors("downloading missing files", repo_id=source_repo_id, revision=rev, token=token):
        api.snapshot_download(source_repo_id, repo_type=REPO_TYPE, revision=rev, allow_patterns=missing,
                              token=token, **kwargs)


def retag(api: HfApi, repo_id: str, tag: str, commit: str, token: str | None) -> None:
    """Point `tag` at `commit` (delete and recreate; once more if someone recreated it meanwhile)."""
    from huggingface_hub.errors import HfHubHTTPError

    with hub_errors(f"recreating tag {tag}", repo_id=repo_id, revision=commit, token=token, write=True):
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE, token=token)
        current = {t.name: t.target_commit for t in refs.tags}
        if current.get(tag) == commit:
            return
        for _attempt in range(2):
            if tag in current:
                try:
                    api.delete_tag(repo_id, tag=tag, repo_type=REPO_TYPE, token=token)
                except HfHubHTTPError as exc:
                    if getattr(exc.response, "status_code", None) != 404:
                        raise
            try:
                api.create_tag(repo_id, tag=tag, revision=commit, repo_type=REPO_TYPE, token=token,
                               tag_message=f"LeRobot codebase {tag}")
                return
            except HfHubHTTPError as exc:
                if getattr(exc.response, "status_code", None) != 409:
                    raise
                current = {tag: "someone else's"}  # created concurrently: delete and try once more
        raise HubError(f"could not move tag {tag} of {repo_id} to {commit}: it keeps being recreated concurrently",
                       status=409, repo_id=repo_id)
