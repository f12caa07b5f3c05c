"""Publish what an annotation changed as a pull request on the source repo: no video byte moves.

An annotation run changes only the data parquet (the language columns) and meta/ (info.json declares them, the
provenance); the videos stay as they are on the source. So for a source read from the Hub (its videos streamed,
never downloaded), `push_dataset(..., create_pr=True)` sends those files, and the card, as one pull request
(`refs/pr/N`) made from the exact source commit that was annotated. Nothing changes on the repo's branches or
tags: the owner reviews and merges it on the Hub, then moves the `v3.0` tag to the merge commit (a pull request
cannot move a tag). The guard still runs: a pull request that would cost an episode its rows is refused like a
push (`allow_row_loss`).

A re-run whose pull request already exists (same files, same content) returns that pull request instead of
opening a second one. A root whose videos differ from the source's is refused: a pull request carries data and
meta only, so such a root is published as a new repo (`--new_repo_id`), for which the videos are uploaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...language.provenance import PROVENANCE_PATH
from .._api import REPO_TYPE, repo_info
from ..errors import HubError, hub_errors
from .dataset import (
    CARD_PATH,
    CommitPlan,
    PushResult,
    PushTarget,
    prepare_card,
    write_public_provenance,
)
from .files import bytes_match_remote, file_matches_remote, local_files, referenced_files
from .guard import Remote, check_rows_kept
from .remote import list_remote
from .target import check_push_target

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

logger = logging.getLogger(__name__)

PR_PREFIXES = ("data/", "meta/")  # what a pull request carries (plus the card)
REUSE_LOOKBACK = 10  # how many of the newest pull requests are compared before a new one is opened


def base_commit(api: HfApi, target: PushTarget) -> str:
    """The commit the pull request is made from: the annotated source revision when the target is the source,
    else the head of the target branch."""
    options, token = target.options, target.token
    revision = options.revision
    if options.source_repo_id == target.repo_id and options.source_revision:
        revision = options.source_revision
    info = repo_info(api, target.repo_id, revision=revision, token=token)
    if info is None or not getattr(info, "sha", None):
        raise HubError(f"--create_pr=true: {target.repo_id} does not exist or this token cannot see it; a pull "
                       "request goes to an existing repo. Publish a new repo with --new_repo_id instead.",
                       repo_id=target.repo_id)
    return str(info.sha)


def plan_pull_request(target: PushTarget, remote: Mapping[str, RepoFile], card: bytes | None) -> CommitPlan:
    """The data and meta files that differ from the base commit, and the card; never a video, never a deletion.

    Raises:
        `HubError`: a video of the root that the base commit lacks or has with another size.
    """
    files = local_files(target.root)
    changed_videos = sorted(rel for rel, path in files.items() if rel.startswith("videos/")
                            and (rel not in remote or path.stat().st_size != remote[rel].size))
    if changed_videos:
        raise HubError(
            f"refusing a pull request from {target.root}: {len(changed_videos)} video file(s) differ from "
            f"{target.repo_id}'s (e.g. {changed_videos[0]}); a pull request carries data and meta only. Publish "
            "the root as a new repo (--new_repo_id=<you>/<name>) instead.", repo_id=target.repo_id)
    adds = {rel: path for rel, path in files.items() if rel.startswith(PR_PREFIXES)
            and (rel not in remote or not file_matches_remote(path, remote[rel]))}
    blobs = {}
    if card is not None:
        adds.pop(CARD_PATH, None)
        if not bytes_match_remote(card, remote.get(CARD_PATH)):
            blobs[CARD_PATH] = card
    elif CARD_PATH in files and (CARD_PATH not in remote or not file_matches_remote(files[CARD_PATH],
                                                                                     remote[CARD_PATH])):
        adds[CARD_PATH] = files[CARD_PATH]
    if target.provenance is not None and target.snapshot is not None:
        adds.pop(PROVENANCE_PATH, None)
        if not bytes_match_remote(target.provenance, remote.get(PROVENANCE_PATH)):
            blobs[PROVENANCE_PATH] = target.provenance
    message = target.options.commit_message or "Add language annotations (lerobot_keyframes)"
    unchanged = sum(1 for rel in files if rel.startswith(PR_PREFIXES)) - len([a for a in adds if a != CARD_PATH])
    return CommitPlan(False, adds, blobs.pop(CARD_PATH, None), (), unchanged, message, blobs)


def matching_pull_request(api: HfApi, target: PushTarget, plan: CommitPlan) -> tuple[str, str] | None:
    """(ref, head commit) of one of the newest pull requests that already holds the planned data and meta files."""
    token, repo_id = target.token, target.repo_id
    with hub_errors("listing pull requests", repo_id=repo_id, token=token):
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE, include_pull_requests=True, token=token)

    def number(ref: str) -> int:
        found = re.search(r"(\d+)$", ref)
        return int(found.group(1)) if found else -1

    for pr in sorted(refs.pull_requests or [], key=lambda r: number(r.ref), reverse=True)[:REUSE_LOOKBACK]:
        files = list_remote(api, repo_id, pr.target_commit, token)
        same = all(rel in files and file_matches_remote(path, files[rel]) for rel, path in plan.adds.items()
                   if rel.startswith(PR_PREFIXES))
        same = same and all(bytes_match_remote(blob, files.get(rel)) for rel, blob in plan.blobs.items())
        if same:  # the same data and meta (the card may differ: it carries the caller's provenance)
            return pr.ref, pr.target_commit
    return None


def open_pull_request(api: HfApi, target: PushTarget) -> PushResult:
    """`push_dataset(..., create_pr=True)`: guard, plan and open the pull request (module docstring)."""
    from huggingface_hub import CommitOperationAdd

    repo_id, options, token, root = target.repo_id, target.options, target.token, target.root
    local_files(root)  # links out of the root: refused before any Hub call
    # the privacy rules of a push (never a public repo from a private source); the source itself may be the target
    check_push_target(api, repo_id, source_repo_id=options.source_repo_id, private=None, allow_source_overwrite=True,
                      token=token)
    base = base_commit(api, target)
    remote = Remote(repo_id, base, list_remote(api, repo_id, base, token))
    missing = [p for p in referenced_files(target.layout) if not (root / p).is_file() and p not in remote.files]
    if missing:
        raise HubError(f"refusing a pull request from {root}: {len(missing)} file(s) its meta/episodes references are "
                       f"neither in the root nor on {repo_id}@{base[:10]} (e.g. {missing[0]})", repo_id=repo_id)
    check_rows_kept(api, root, remote, annotated=options.annotated, allow_row_loss=options.allow_row_loss,
                    token=token)
    write_public_provenance(target)
    card = prepare_card(api, target, remote.files, base) if options.write_card else None
    plan = plan_pull_request(target, remote.files, card)
    endpoint = getattr(api, "endpoint", None) or "https://huggingface.co"
    common = dict(repo_id=repo_id, revision=options.revision, url=f"{endpoint}/datasets/{repo_id}", private=None,
                  created=False, first_push=False, base_commit=base, version_tag=target.layout.version)
    if not plan.uploaded:
        logger.info("%s@%s already has the root's data and meta: no pull request", repo_id, base[:10])
        return PushResult(commit_oid=base, unchanged=plan.unchanged, extra={"no_change_to_propose": True}, **common)
    found = matching_pull_request(api, target, plan)
    if found is not None:
        ref, head = found
        logger.info("%s already holds these files: not opening another pull request", ref)
        return PushResult(commit_oid=head, uploaded=plan.uploaded, unchanged=plan.unchanged, pr_revision=ref,
                          pr_url=f"{endpoint}/datasets/{repo_id}/discussions/{ref.rsplit('/', 1)[-1]}",
                          extra={"reused_pull_request": True}, **common)
    operations = [CommitOperationAdd(rel, str(path)) for rel, path in sorted(plan.adds.items())]
    operations += [CommitOperationAdd(rel, blob) for rel, blob in sorted(plan.blobs.items())]
    if plan.card is not None:
        operations.append(CommitOperationAdd(CARD_PATH, plan.card))
    description = (f"Language annotations written by lerobot_keyframes from `{base}`: {len(plan.uploaded)} file(s) "
                   "(data parquet with the `language_persistent` / `language_events` columns, meta/, the card); no "
                   f"video changes. After merging, move the `{target.layout.version}` tag to the merge commit so "
                   "LeRobotDataset loads the annotated version.")
    logger.info("opening a pull request on %s from %s: %d file(s)", repo_id, base[:10], len(plan.uploaded))
    with hub_errors("opening the pull request", repo_id=repo_id, revision=options.revision, token=token,
                    write=True):
        info = api.create_commit(repo_id, operations=operations, commit_message=plan.message,
                                 commit_description=description, repo_type=REPO_TYPE, revision=options.revision,
                                 parent_commit=base, create_pr=True, token=token)
    if not getattr(info, "pr_revision", None):
        raise HubError(f"{repo_id}: the Hub made no pull request (commit {info.oid}); nothing was proposed",
                       repo_id=repo_id)
    return PushResult(commit_oid=info.oid, uploaded=plan.uploaded, unchanged=plan.unchanged, pr_url=info.pr_url,
                      pr_revision=info.pr_revision, commit_url=getattr(info, "commit_url", None),
                      uploaded_bytes=plan.uploaded_bytes, video_files=0, **common)
