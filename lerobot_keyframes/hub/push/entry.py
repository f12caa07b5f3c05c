"""`push_dataset`: the steps of `dataset.py` in order, the guard (`guard.py`) before anything is created or sent, or a
pull request instead (`pull_request.py`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._api import REPO_TYPE, get_api, repo_info
from ..errors import HubError, hub_errors
from .dataset import (
    PushOptions,
    PushResult,
    PushTarget,
    check_target,
    commit,
    plan_files,
    prepare_card,
    resolve_target,
    write_public_provenance,
)
from .guard import Remote, check_not_source, check_rows_kept
from .pull_request import open_pull_request
from .remote import branch_head, ensure_repo, list_remote, retag

if TYPE_CHECKING:
    from huggingface_hub import HfApi


def push_dataset(
    root: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    source_repo_id: str | None = None,
    allow_source_overwrite: bool = False,
    provenance: Mapping[str, Any] | None = None,
    revision: str = "main",
    token: str | None = None,
    api: HfApi | None = None,
    commit_message: str | None = None,
    tag: bool | None = None,
    source_revision: str | None = None,
    fetch_missing: bool = True,
    write_card: bool = True,
    allow_row_loss: bool = False,
    annotated: Collection[int] | None = None,
    create_pr: bool = False,
) -> PushResult:
    """Push the dataset at `root` to the dataset repo `repo_id` (the rules: see the `push` package docstring).

    Args:
        root (`str` or `Path`):
            The LeRobot v3 dataset root.
        repo_id (`str`):
            The target dataset repo, `user/name`.
        private (`bool`, *optional*):
            A new repo's visibility (default: private; public only if the source is known public).
        source_repo_id (`str`, *optional*):
            The repo the root came from (default: the cache snapshot the root is, else its provenance's).
        allow_source_overwrite (`bool`, *optional*, defaults to `False`):
            Let `repo_id` be the source itself.
        provenance (`Mapping`, *optional*):
            Package version, model id and revision, backend, sampling, prompt hashes, modules, episodes,
            rows per style, validator, date, job id, ...: the card's provenance section.
        revision (`str`, *optional*, defaults to `"main"`):
            The target branch (created when missing).
        token (`str`, *optional*):
            The Hugging Face token.
        api (`HfApi`, *optional*):
            The client (default: `HfApi(token=token)`).
        commit_message (`str`, *optional*):
            The commit message (default: a generated one).
        tag (`bool`, *optional*):
            Recreate the codebase-version tag on the new commit (default: on `main` only).
        source_revision (`str`, *optional*):
            The source revision missing files are fetched from.
        fetch_missing (`bool`, *optional*, defaults to `True`):
            Download files meta/episodes references but `root` lacks (a snapshot fetched without videos)
            from the source first.
        write_card (`bool`, *optional*, defaults to `True`):
            Write README.md, the dataset card.
        allow_row_loss (`bool`, *optional*, defaults to `False`):
            Push even when an episode of the target would lose its language rows, or the target its language
            columns (refused by default: see `guard`).
        annotated (`Collection[int]`, *optional*):
            The episodes the run that wrote `root` annotated: the others may not get fewer rows than the target
            has (None: unknown, only an episode left with no rows counts as a loss).
        create_pr (`bool`, *optional*, defaults to `False`):
            Open a pull request on `repo_id` (an existing repo, usually the source) with the changed data and
            meta files and the card, made from the source revision the root was annotated from; no video is
            sent and no tag moves (the owner merges it and moves the tag). See `pull_request.py`.

    Returns:
        `PushResult`: what was uploaded, deleted and tagged, and the commit the repo is at now.

    Raises:
        `HubError`: a refused push or a Hub failure, with a message that says what to do.
    """
    options = PushOptions(
        private=private, source_repo_id=source_repo_id, allow_source_overwrite=allow_source_overwrite,
        provenance=provenance, revision=revision, commit_message=commit_message, tag=tag,
        source_revision=source_revision, fetch_missing=fetch_missing, write_card=write_card,
        allow_row_loss=allow_row_loss, annotated=None if annotated is None else tuple(sorted(int(e) for e in annotated)),
        create_pr=create_pr)
    return push_with_options(root, repo_id, options, token=token, api=api)


def push_with_options(root: str | Path, repo_id: str, options: PushOptions, *, token: str | None = None,
         api: HfApi | None = None) -> PushResult:
    """`push_dataset` with its options as one `PushOptions`: the steps, in order.

    Resolve the target (a pending journal refused, the provenance made public), check it (rules, links, missing
    files), then, on an existing repo, guard the commit the push builds on (its source, its rows) before anything
    is created or sent; create the repo and branch, write the card, plan the files against that commit, commit
    once, move the tag. `create_pr`: `pull_request.open_pull_request` instead.
    """
    api = get_api(api, token)
    target = resolve_target(root, repo_id, options, token)
    if options.create_pr:
        return open_pull_request(api, target)
    info = check_target(api, target)
    base = None
    if info is not None:
        base = existing_head(api, repo_id, options.revision, token)
        guard(api, target, Remote(repo_id, base, list_remote(api, repo_id, base, token)))
    write_public_provenance(target)
    created, is_private = ensure_repo(api, repo_id, info, private=options.private, token=token)
    head_sha = branch_head(api, repo_id, options.revision, token=token, start=base)
    remote = list_remote(api, repo_id, head_sha, token)
    card = prepare_card(api, target, remote, head_sha) if options.write_card else None
    plan = plan_files(target, remote, card)
    commit_oid, commit_url = commit(api, target, plan, head_sha)
    tag_name = None
    if target.tag:
        tag_name = target.layout.version
        retag(api, repo_id, tag_name, commit_oid, token)
    endpoint = getattr(api, "endpoint", None) or "https://huggingface.co"
    return PushResult(
        repo_id=repo_id, revision=options.revision, commit_oid=commit_oid, url=f"{endpoint}/datasets/{repo_id}",
        private=is_private, created=created, first_push=plan.first_push, uploaded=plan.uploaded,
        deleted=plan.deleted, unchanged=plan.unchanged, tag=tag_name, commit_url=commit_url,
        uploaded_bytes=plan.uploaded_bytes, video_files=plan.video_files,
    )


def existing_head(api: HfApi, repo_id: str, branch: str, token: str | None) -> str:
    """The head commit of `branch` of an existing repo, else of main (a new branch starts there); nothing created."""
    from huggingface_hub.errors import RevisionNotFoundError

    info = None
    if branch != "main":
        with hub_errors("reading the branch", repo_id=repo_id, revision=branch, token=token):
            try:
                info = api.repo_info(repo_id, repo_type=REPO_TYPE, revision=branch, token=token)
            except RevisionNotFoundError:
                info = None
    if info is None:
        info = repo_info(api, repo_id, revision="main", token=token)
    if info is None or not getattr(info, "sha", None):
        raise HubError(f"{repo_id}@{branch}: the repo exists but its head commit could not be read", repo_id=repo_id)
    return str(info.sha)


def guard(api: HfApi, target: PushTarget, remote: Remote) -> None:
    """The one guard (`guard.py`) on the commit the push builds on: never the root's source, never fewer rows."""
    options = target.options
    check_not_source(api, target.root, remote, source_repo_id=options.source_repo_id,
                     allow_source_overwrite=options.allow_source_overwrite, token=target.token)
    check_rows_kept(api, target.root, remote, annotated=options.annotated, allow_row_loss=options.allow_row_loss,
                    token=target.token)
