"""The steps of a push and their records: resolve the target, check it, write the card, plan the files, commit once
(`entry.push_dataset` runs them in order, with the guard; `pull_request.py` is the other way out)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...language.provenance import (
    PROVENANCE_PATH,
    ProvenanceError,
    provenance_text,
    public_provenance,
    read_provenance,
)
from ...utils.files import atomic_write_text
from .._api import REPO_TYPE
from ..card import build_card, card_text
from ..errors import HubError, hub_errors
from ..jobs import RUN_ID_ENV  # set inside an HF Job; recorded in the card
from .files import MANAGED_PREFIXES, bytes_match_remote, file_matches_remote, local_files, referenced_files
from .guard import check_root
from .remote import download_text, fetch_missing
from .target import cache_snapshot, check_push_target, source_from_provenance

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo, HfApi
    from huggingface_hub.hf_api import DatasetInfo, RepoFile

    from ...dataset.layout import DatasetLayout

logger = logging.getLogger(__name__)
CARD_PATH = "README.md"


@dataclass(frozen=True)
class PushOptions:
    """How `push_dataset` treats the target: the keyword arguments it takes besides `token` and `api`."""

    private: bool | None = None  # a new repo's visibility (None: private); an existing repo's is never changed
    source_repo_id: str | None = None  # the repo the root came from (None: the cache snapshot or provenance says)
    allow_source_overwrite: bool = False  # let the target be the source itself
    provenance: Mapping[str, Any] | None = None  # the card's provenance section
    revision: str = "main"  # the target branch
    commit_message: str | None = None  # None: a generated one
    tag: bool | None = None  # recreate the codebase-version tag (None: on main only)
    source_revision: str | None = None  # the source revision to fetch missing files from
    fetch_missing: bool = True  # download files meta/episodes references but the root lacks
    write_card: bool = True  # write README.md (the dataset card)
    allow_row_loss: bool = False  # push even if an episode of the target loses language rows (or the columns go)
    annotated: tuple[int, ...] | None = None  # episodes the run annotated (None: unknown, a standalone push)
    create_pr: bool = False  # open a pull request with the changed data and meta files (no video) instead


@dataclass(frozen=True)
class PushResult:
    """What a push did. `commit_oid` is the commit the dataset is at now (unchanged when nothing changed)."""

    repo_id: str
    revision: str
    commit_oid: str
    url: str
    private: bool | None
    created: bool
    first_push: bool
    uploaded: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: int = 0
    tag: str | None = None
    commit_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    uploaded_bytes: int = 0  # bytes of the files sent (an LFS object the Hub already had still counts)
    video_files: int = 0  # how many of them are videos
    pr_url: str | None = None  # a pull request: its page ...
    pr_revision: str | None = None  # ... and its ref (`refs/pr/N`), readable as a revision
    base_commit: str | None = None  # a pull request: the commit it was made from
    version_tag: str | None = None  # the codebase-version tag the owner moves after merging a pull request

    @property
    def changed(self) -> bool:
        return bool(self.uploaded or self.deleted)

    def summary(self) -> str:
        moved = f"{_size(self.uploaded_bytes)} sent, {self.video_files} video file(s)"
        if self.pr_revision is not None:
            return (f"{self.repo_id}: pull request {self.pr_revision} from {(self.base_commit or '?')[:10]}; "
                    f"{len(self.uploaded)} file(s) (data and meta only), {moved}. Nothing changes on "
                    f"{self.revision} until the owner merges it on the Hub"
                    + (f" and moves tag {self.version_tag} to the merge commit" if self.version_tag else "")
                    + f"\n{self.pr_url}")
        if self.extra.get("no_change_to_propose"):
            return f"{self.repo_id}: nothing to propose, the root's data and meta equal {self.revision}'s\n{self.url}"
        what = ("first push" if self.first_push else "update") if self.changed else "no file changed"
        tag = f", tag {self.tag} -> {self.commit_oid[:10]}" if self.tag else ""
        return (f"{self.repo_id}@{self.revision}: {what}; {len(self.uploaded)} uploaded ({moved}), "
                f"{len(self.deleted)} deleted, {self.unchanged} unchanged; commit {self.commit_oid[:10]}{tag}\n{self.url}")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@dataclass(frozen=True)
class PushTarget:
    """A push resolved: the root and its layout, the target repo, and the options with the source filled in."""

    root: Path
    layout: DatasetLayout
    repo_id: str
    options: PushOptions
    snapshot: tuple[str, str] | None  # (repo, commit) when the root is a download-cache snapshot (never written)
    token: str | None
    provenance: bytes | None = None  # the root's provenance made public, when that changes it

    @property
    def tag(self) -> bool:
        return (self.options.revision == "main") if self.options.tag is None else self.options.tag

    @property
    def copies_source(self) -> bool:
        return self.options.source_repo_id is not None and self.options.source_repo_id != self.repo_id


@dataclass(frozen=True)
class CommitPlan:
    """The files one push sends: added (all of them on a first push, else the changed ones), the card, deletions."""

    first_push: bool
    adds: dict[str, Path]
    card: bytes | None  # README.md as bytes (a cache-snapshot root), when it differs from the remote one
    deleted: tuple[str, ...]
    unchanged: int
    message: str
    blobs: dict[str, bytes] = field(default_factory=dict)  # other files sent from memory (a snapshot's provenance)

    @property
    def uploaded(self) -> tuple[str, ...]:
        return tuple(sorted([*self.adds, *self.blobs, *([CARD_PATH] if self.card is not None else [])]))

    @property
    def uploaded_bytes(self) -> int:
        return (sum(p.stat().st_size for p in self.adds.values()) + len(self.card or b"")
                + sum(len(b) for b in self.blobs.values()))

    @property
    def video_files(self) -> int:
        return sum(1 for rel in self.adds if rel.startswith("videos/"))


def resolve_target(root: str | Path, repo_id: str, options: PushOptions, token: str | None) -> PushTarget:
    """The root opened, and the source filled in: the caller's, else the cache snapshot's, else the provenance's."""
    from ...dataset.layout import DatasetLayout

    root = Path(root).expanduser().resolve()
    check_root(root)  # an interrupted in-place write: refused before the root is read
    layout = DatasetLayout.open(root)
    snapshot = cache_snapshot(root)
    recorded_repo, recorded_revision = source_from_provenance(root)
    source, source_revision = options.source_repo_id, options.source_revision
    if source is None and snapshot is not None:
        source = snapshot[0]
    if source is None and recorded_repo is not None:  # an annotated output names its source itself
        source, source_revision = recorded_repo, source_revision or recorded_revision
    options = dataclasses.replace(options, source_repo_id=source, source_revision=source_revision)
    return PushTarget(root, layout, repo_id, options, snapshot, token, publish_provenance(root))


def publish_provenance(root: Path) -> bytes | None:
    """The root's provenance as it may be published (a Hub source as `user/name@revision`, a local one by its
    hash, no path of this machine), when that differs from the file; None when it has none or it is public."""
    try:
        record = read_provenance(root)
    except ProvenanceError as exc:
        raise HubError(f"{exc}; it names the source this push must not overwrite") from None
    if record is None:
        return None
    text = provenance_text(public_provenance(record, roots=[root]))
    return None if text == (root / PROVENANCE_PATH).read_text(encoding="utf-8") else text.encode("utf-8")


def write_public_provenance(target: PushTarget) -> None:
    """Once the push is allowed: the public provenance replaces the root's (atomically), so the root and the repo
    stay identical; a cache-snapshot root is never written (its public provenance goes up from memory)."""
    if target.provenance is not None and target.snapshot is None:
        logger.info("%s: local paths taken out of the provenance before the push", target.root / PROVENANCE_PATH)
        atomic_write_text(target.root / PROVENANCE_PATH, target.provenance.decode("utf-8"))


def card_provenance(target: PushTarget) -> dict[str, Any] | None:
    """The caller's provenance, plus the source and the HF Job run id when known (for the card)."""
    options = target.options
    if options.provenance is None:
        return None
    provenance = public_provenance(options.provenance, roots=[target.root])
    if target.copies_source:
        provenance.setdefault("source_repo_id", options.source_repo_id)
        if options.source_revision is not None:
            provenance.setdefault("source_revision", options.source_revision)
    if os.environ.get(RUN_ID_ENV):
        provenance.setdefault("job_run_id", os.environ[RUN_ID_ENV])
    return provenance


def check_target(api: HfApi, target: PushTarget) -> DatasetInfo | None:
    """The target's rules, no link out of the root, no referenced file missing; returns the target's info or None.

    Never pushes (or deletes remote files) from a root that lacks files its metadata references: they are
    fetched from the source first when `fetch_missing`, else the push is refused.
    """
    options, root = target.options, target.root
    _, info = check_push_target(api, target.repo_id, source_repo_id=options.source_repo_id, private=options.private,
                                allow_source_overwrite=options.allow_source_overwrite, token=target.token)
    local_files(root)  # refuses links out of the root before anything is fetched or created
    missing = [p for p in referenced_files(target.layout) if not (root / p).is_file()]
    if missing and options.source_repo_id is not None and options.fetch_missing:
        fetch_missing(api, root, missing, options.source_repo_id, options.source_revision, target.token)
        missing = [p for p in missing if not (root / p).is_file()]
    if missing:
        raise HubError(
            f"{root}: {len(missing)} file(s) referenced by meta/episodes are missing locally (e.g. {missing[:3]}). "
            "Download them first (load the dataset with download_videos=True) or pass the source repo id so the "
            "push can fetch them."
        )
    return info


def prepare_card(api: HfApi, target: PushTarget, remote: Mapping[str, RepoFile], head_sha: str) -> bytes | None:
    """The card merged with what exists (remote card, else the local one, else the source's), written into the root.

    A download-cache snapshot root is never written to: its card is returned as bytes for the commit instead.
    """
    token, source = target.token, target.options.source_repo_id
    existing = None
    if CARD_PATH in remote:
        existing = download_text(api, target.repo_id, CARD_PATH, revision=head_sha, token=token)
    readme = target.root / CARD_PATH
    if existing is None and readme.is_file():
        existing = readme.read_text(encoding="utf-8")
    if existing is None and target.copies_source and source is not None:
        existing = download_text(api, source, CARD_PATH, revision=target.options.source_revision, token=token)
    text = card_text(build_card(repo_id=target.repo_id, info=target.layout.info, existing=existing,
                                provenance=card_provenance(target), source_repo_id=source))
    if target.snapshot is not None:
        return text.encode("utf-8")
    if not readme.is_file() or readme.read_text(encoding="utf-8") != text:
        atomic_write_text(readme, text)
    return None


def plan_files(target: PushTarget, remote: Mapping[str, RepoFile], card: bytes | None) -> CommitPlan:
    """What goes out: every file on a first push, else the changed and new ones plus deletions of stale files.

    Files are compared with the remote listing by size, then the LFS sha256 or the git blob id; stale means
    on the remote under data/, meta/ or videos/ and no longer in the root.
    """
    files = local_files(target.root)
    blobs = {}
    if card is not None:
        files.pop(CARD_PATH, None)
        if not bytes_match_remote(card, remote.get(CARD_PATH)):
            blobs[CARD_PATH] = card
    if target.provenance is not None and target.snapshot is not None:  # a snapshot's provenance, made public
        files.pop(PROVENANCE_PATH, None)
        if not bytes_match_remote(target.provenance, remote.get(PROVENANCE_PATH)):
            blobs[PROVENANCE_PATH] = target.provenance
    first_push = not any(p.startswith(MANAGED_PREFIXES) for p in remote)
    message = target.options.commit_message or ("Upload LeRobot dataset" if first_push else "Update LeRobot dataset")
    if first_push:
        return CommitPlan(True, files, blobs.pop(CARD_PATH, None), (), 0, message, blobs)
    changed = {rel: path for rel, path in files.items()
               if rel not in remote or not file_matches_remote(path, remote[rel])}
    stale = tuple(sorted(p for p in remote if p.startswith(MANAGED_PREFIXES) and p not in files and p not in blobs))
    return CommitPlan(False, changed, blobs.pop(CARD_PATH, None), stale, len(files) - len(changed), message, blobs)


def commit(api: HfApi, target: PushTarget, plan: CommitPlan, head_sha: str) -> tuple[str, str | None]:
    """ONE commit on top of `head_sha` (a concurrent change fails cleanly); returns (commit id, its URL).

    A first push adds the exact checked file list (not upload_folder's own walk, which would follow links out
    of the root), then a snapshot root's card in a second commit. Nothing to send: the head, unchanged.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    repo_id, revision, token = target.repo_id, target.options.revision, target.token
    if not plan.uploaded and not plan.deleted:
        logger.info("%s@%s is up to date (%d files)", repo_id, revision, plan.unchanged)
        return head_sha, None
    adds = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in sorted(plan.adds.items())]
    adds += [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=blob) for rel, blob in sorted(plan.blobs.items())]
    card = [CommitOperationAdd(CARD_PATH, plan.card)] if plan.card is not None else []

    def create(operations: list[Any], message: str, parent: str) -> CommitInfo:
        return api.create_commit(repo_id, operations=operations, commit_message=message, repo_type=REPO_TYPE,
                                 revision=revision, parent_commit=parent, token=token)

    if plan.first_push:
        logger.info("first push of %s to %s@%s: uploading %d files", target.root, repo_id, revision, len(plan.adds))
        with hub_errors("uploading the dataset folder", repo_id=repo_id, revision=revision, token=token, write=True):
            info = create(adds, plan.message, head_sha)
            if card:
                info = create(card, "Add dataset card", info.oid)
    else:
        logger.info("pushing %d changed and %d deleted file(s) to %s@%s (%d unchanged)",
                    len(plan.uploaded), len(plan.deleted), repo_id, revision, plan.unchanged)
        deletes = [CommitOperationDelete(path_in_repo=rel) for rel in plan.deleted]
        with hub_errors("committing the changed files", repo_id=repo_id, revision=revision, token=token, write=True):
            info = create([*adds, *card, *deletes], plan.message, head_sha)
    return info.oid, getattr(info, "commit_url", None)
