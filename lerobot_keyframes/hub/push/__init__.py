"""Push a LeRobot v3 dataset root to the Hub: first push uploads the folder, later pushes upload only what changed.

`push_dataset(root, repo_id, ...)` is what `lerobot-keyframes push` and `annotate --push_to_hub` call:

- the target defaults to a new repo; pushing back to the source repo needs `allow_source_overwrite=True`;
- a new repo is private unless the caller passes `private=False` *and* the source is known to be public
  (an annotated copy of a private dataset is never published by accident). The source is `source_repo_id`,
  else the cache snapshot the root is, else `source_repo_id` in the root's meta/annotation_provenance.json;
  a root with no known source is the user's own and `private=False` publishes it. An existing repo's
  visibility is never changed;
- first push (nothing under data/, meta/, videos/ yet): one commit of every file of the root (`local_files`:
  staging, caches and temp files skipped, links out of the root refused);
- re-push: local files are compared with the remote listing (size, then the LFS sha256 or the git blob id)
  and only changed or new files, plus deletions of stale files under data/, meta/ and videos/, go out in
  ONE `create_commit` whose parent is the commit that was compared (a concurrent change fails cleanly);
- an interrupted push is completed by re-running it: LFS objects already uploaded are not sent again,
  and a push whose commit landed but whose tag did not only fixes the tag;
- the `v3.0` tag (codebase_version of meta/info.json) is recreated on the new commit of `main`, so
  `LeRobotDataset` and our reader resolve the annotated version;
- README.md is the dataset card (see card.py), merged with the existing card, written into the root first
  so the root and the repo stay identical.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..utils.files import atomic_write_text
from .card import build_card, card_text
from .errors import HubError, hub_errors

if TYPE_CHECKING:
    from ..dataset.layout import DatasetLayout

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"
# Never uploaded: annotation staging, download/tool caches, temp files of atomic writes.
SKIP_PATTERNS = (
    ".lerobot_keyframes/*",
    "staging/*",
    ".cache/*",
    "*/.cache/*",
    ".git/*",
    ".huggingface/*",
    "*__pycache__*",
    "*.tmp",
    "*.tmp-*",  # temp files of our atomic writes (`.file-000.parquet.tmp-<pid>-<id>`)
    "*.partial",
    "*.incomplete",
    "*.lock",
    "*.DS_Store",
)
# The only remote folders a push deletes stale files from; anything else on the repo is left alone.
MANAGED_PREFIXES = ("data/", "meta/", "videos/")
PROVENANCE_PATH = "meta/annotation_provenance.json"  # written by annotate; names the source repo and revision
_CACHE_SNAPSHOT = re.compile(r"datasets--(?P<ns>[^/]+?)--(?P<name>[^/]+)/snapshots/[0-9a-f]{40}$")


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


def run_push(config: PushConfig, *, token: str | None = None, api: Any = None) -> PushResult:
    """`push_dataset` from a `PushConfig` (the CLI's entry point)."""
    import json

    if config.root is None or config.new_repo_id is None:
        raise HubError("push needs --root=<dataset root> and --new_repo_id=<user>/<name>")
    provenance = None
    if config.provenance is not None:
        try:
            provenance = json.loads(Path(config.provenance).read_text())
        except (OSError, ValueError) as exc:
            raise HubError(f"{config.provenance}: cannot read the provenance JSON ({exc})") from None
    return push_dataset(
        config.root, config.new_repo_id, private=config.private, source_repo_id=config.repo_id,
        allow_source_overwrite=config.allow_source_overwrite, provenance=provenance, revision=config.branch,
        token=token, api=api, commit_message=config.commit_message, tag=config.tag and config.branch == "main",
        source_revision=config.revision,
    )


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

    @property
    def changed(self) -> bool:
        return bool(self.uploaded or self.deleted)

    def summary(self) -> str:
        what = ("first push" if self.first_push else "update") if self.changed else "no file changed"
        tag = f", tag {self.tag} -> {self.commit_oid[:10]}" if self.tag else ""
        return (f"{self.repo_id}@{self.revision}: {what}; {len(self.uploaded)} uploaded, {len(self.deleted)} deleted, "
                f"{self.unchanged} unchanged; commit {self.commit_oid[:10]}{tag}\n{self.url}")


def is_skipped(relative_path: str) -> bool:
    return any(fnmatch.fnmatch(relative_path, pattern) for pattern in SKIP_PATTERNS)


def local_files(root: Path) -> dict[str, Path]:
    """relative posix path -> file, for every file under `root` that a push uploads.

    Symlinks are followed only inside the root (or into the HF cache blobs of its repo); a link that leaves
    it, dangles or loops raises `UnsafeLinkError` (see `iter_dataset_files`), so nothing outside is uploaded.
    """
    from ..dataset.layout import iter_dataset_files

    root = Path(root)
    files = iter_dataset_files(root, skip=lambda rel: is_skipped(rel + "x" if rel.endswith("/") else rel))
    return {path.relative_to(root).as_posix(): path for path in files}


def source_from_provenance(root: Path) -> tuple[str | None, str | None]:
    """(source repo id, revision) recorded in `meta/annotation_provenance.json` by the run that wrote `root`."""
    import json

    path = root / PROVENANCE_PATH
    if not path.is_file():
        return None, None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HubError(f"{path}: unreadable provenance ({exc}); it names the source this push must not overwrite") from None
    if not isinstance(record, dict):
        return None, None
    repo, rev = record.get("source_repo_id"), record.get("source_revision")
    return (repo if isinstance(repo, str) else None), (rev if isinstance(rev, str) else None)


def check_push_target(api: Any, repo_id: str, *, source_repo_id: str | None, private: bool | None,
                      allow_source_overwrite: bool, token: str | None = None) -> tuple[bool, Any]:
    """The rules of a push target, checked before anything is written (by `push` and by annotate's preflight).

    - the source repo is written only with `allow_source_overwrite`;
    - a new repo is private unless `private=False`; `private=False` is refused when the source is known and
      not known public (private, or invisible to this token). A root with no known source (a local dataset
      with no `source_repo_id` in its provenance) becomes public only by that explicit `private=False`;
    - an existing public repo is refused as the target of a copy of a private or unknown source.
    Returns (must_stay_private, target repo info or None).
    """
    if repo_id.count("/") != 1:
        raise HubError(f"{repo_id!r} is not a repo id of the form 'user/name'")
    if source_repo_id is not None and repo_id == source_repo_id and not allow_source_overwrite:
        raise HubError(
            f"refusing to push to {repo_id}: it is the source dataset. Push to a new repo (--new_repo_id="
            f"<you>/<name>), or pass allow_source_overwrite=True (--allow_source_overwrite) to rewrite the source."
        )
    source_public = source_visibility(api, source_repo_id, token=token) if source_repo_id != repo_id else None
    must_stay_private = source_repo_id is not None and source_repo_id != repo_id and source_public is not True
    if private is False and must_stay_private:
        raise HubError(
            f"refusing to make {repo_id} public: its source {source_repo_id} is private or could not be checked. "
            "An annotated copy of a private dataset is never published; push privately (the default)."
        )
    target = _repo_info(api, repo_id, revision=None, token=token)
    if target is not None and must_stay_private and getattr(target, "private", None) is False:
        raise HubError(
            f"refusing to push to {repo_id}: it is public and the source {source_repo_id} is private or could "
            "not be checked. Push to a private repo instead."
        )
    return must_stay_private, target


def sha256_file(path: Path, chunk: int = 8 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def git_blob_oid_file(path: Path, chunk: int = 8 * 1024 * 1024) -> str:
    """The git blob id of a file (how the Hub identifies non-LFS files)."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_matches_remote(path: Path, remote: Any) -> bool:
    """Whether a local file has the content of a remote `RepoFile` (size, then LFS sha256 or git blob id)."""
    if path.stat().st_size != remote.size:
        return False
    if getattr(remote, "lfs", None) is not None:
        return sha256_file(path) == remote.lfs.sha256
    return git_blob_oid_file(path) == remote.blob_id


def referenced_files(layout: DatasetLayout) -> list[str]:
    """Every data and video file that meta/episodes points at, plus the meta files, as relative paths."""
    from ..dataset.episodes import read_episodes_meta
    from ..dataset.layout import INFO_PATH

    meta = read_episodes_meta(layout)
    cols = meta.to_pydict()
    paths = {INFO_PATH} | {layout.relative(p) for p in layout.episodes_paths()}
    for i in range(meta.num_rows):
        paths.add(layout.relative(layout.data_path(cols["data/chunk_index"][i], cols["data/file_index"][i])))
        for key in layout.video_keys:
            paths.add(layout.relative(layout.video_path(key, cols[f"videos/{key}/chunk_index"][i],
                                                        cols[f"videos/{key}/file_index"][i])))
    return sorted(paths)


def cache_snapshot(root: Path) -> tuple[str, str] | None:
    """(`user/name`, commit) when `root` is a Hugging Face cache snapshot of a dataset repo.

    Such a root is never written to: its files are links into the shared blob store, and its content must
    keep matching the commit it is named after.
    """
    match = _CACHE_SNAPSHOT.search(root.as_posix())
    return (f"{match['ns']}/{match['name']}", root.name) if match else None


def _repo_info(api: Any, repo_id: str, *, revision: str | None, token: str | None) -> Any | None:
    """The repo's info, or None when it does not exist (or is private and invisible to this token)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    with hub_errors("reading repo info", repo_id=repo_id, revision=revision, token=token):
        try:
            return api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision, token=token)
        except RepositoryNotFoundError:
            return None


def source_visibility(api: Any, source_repo_id: str | None, *, token: str | None = None) -> bool | None:
    """True if the source repo is known public, False if private, None if unknown (absent or invisible)."""
    if source_repo_id is None:
        return None
    info = _repo_info(api, source_repo_id, revision=None, token=token)
    if info is None:
        return None
    private = getattr(info, "private", None)
    return None if private is None else not private


def _download_text(api: Any, repo_id: str, filename: str, *, revision: str | None, token: str | None) -> str | None:
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


def _fetch_missing(api: Any, root: Path, missing: list[str], source_repo_id: str, source_revision: str | None,
                   token: str | None) -> None:
    """Download `missing` files of the source: into the same cache snapshot when `root` is one, else into root."""
    from ..dataset.source import resolve_revision

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


def _bytes_match_remote(content: bytes, remote: Any) -> bool:
    if remote is None or len(content) != remote.size:
        return False
    if getattr(remote, "lfs", None) is not None:
        return hashlib.sha256(content).hexdigest() == remote.lfs.sha256
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() == remote.blob_id


def _list_remote(api: Any, repo_id: str, commit: str, token: str | None) -> dict[str, Any]:
    from huggingface_hub.hf_api import RepoFile

    with hub_errors("listing remote files", repo_id=repo_id, revision=commit, token=token):
        return {
            f.path: f
            for f in api.list_repo_tree(repo_id, recursive=True, revision=commit, repo_type=REPO_TYPE, token=token)
            if isinstance(f, RepoFile)
        }


def _retag(api: Any, repo_id: str, tag: str, commit: str, token: str | None) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    with hub_errors(f"recreating tag {tag}", repo_id=repo_id, revision=commit, token=token):
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
    api: Any = None,
    commit_message: str | None = None,
    tag: bool | None = None,
    source_revision: str | None = None,
    fetch_missing: bool = True,
    write_card: bool = True,
) -> PushResult:
    """Push the dataset at `root` to the dataset repo `repo_id` (see the module docstring for the rules).

    `provenance` (package version, model id and revision, backend, sampling, prompt hashes, modules,
    episodes, rows per style, validator, date, job id, ...) goes into the card's provenance section.
    Files that meta/episodes references but `root` lacks (a Hub snapshot fetched without videos) are
    downloaded from `source_repo_id` first when `fetch_missing`. `tag` defaults to True on `main`.
    Raises `HubError` with an actionable message on any Hub failure or refused push.
    """
    from huggingface_hub import HfApi

    from ..dataset.layout import DatasetLayout

    root = Path(root).expanduser().resolve()
    layout = DatasetLayout.open(root)
    api = api if api is not None else HfApi(token=token)
    snapshot = cache_snapshot(root)
    recorded_repo, recorded_revision = source_from_provenance(root)
    if source_repo_id is None and snapshot is not None:
        source_repo_id = snapshot[0]
    if source_repo_id is None and recorded_repo is not None:  # an annotated output names its source itself
        source_repo_id, source_revision = recorded_repo, source_revision or recorded_revision
    tag = (revision == "main") if tag is None else tag
    codebase_version = layout.version
    if provenance is not None:
        provenance = dict(provenance)
        if source_repo_id is not None and source_repo_id != repo_id:
            provenance.setdefault("source_repo_id", source_repo_id)
            if source_revision is not None:
                provenance.setdefault("source_revision", source_revision)
        if os.environ.get("LEROBOT_KEYFRAMES_RUN_ID"):  # set by jobs.py inside an HF Job
            provenance.setdefault("job_run_id", os.environ["LEROBOT_KEYFRAMES_RUN_ID"])

    # target and visibility (one rule, shared with annotate's preflight)
    _, target = check_push_target(
        api, repo_id, source_repo_id=source_repo_id, private=private,
        allow_source_overwrite=allow_source_overwrite, token=token)
    local_files(root)  # refuses links out of the root before anything is fetched or created

    # completeness: never push (or delete remote files) from a root that lacks files its metadata references
    missing = [p for p in referenced_files(layout) if not (root / p).is_file()]
    if missing and source_repo_id is not None and fetch_missing:
        _fetch_missing(api, root, missing, source_repo_id, source_revision, token)
        missing = [p for p in missing if not (root / p).is_file()]
    if missing:
        raise HubError(
            f"{root}: {len(missing)} file(s) referenced by meta/episodes are missing locally (e.g. {missing[:3]}). "
            "Download them first (load the dataset with download_videos=True) or pass the source repo id so the "
            "push can fetch them."
        )

    created = False
    if target is None:
        want_private = True if private is None else private
        with hub_errors("creating the repo", repo_id=repo_id, token=token):
            api.create_repo(repo_id, repo_type=REPO_TYPE, private=want_private, exist_ok=True, token=token)
        created = True
        target = _repo_info(api, repo_id, revision=None, token=token)
        is_private = want_private if target is None else getattr(target, "private", want_private)
    else:
        is_private = getattr(target, "private", None)
        if private is not None and is_private is not None and private != is_private:
            logger.warning("%s already exists and is %s; its visibility is left unchanged", repo_id,
                           "private" if is_private else "public")

    # the branch to push to
    if revision != "main":
        with hub_errors("creating the branch", repo_id=repo_id, revision=revision, token=token):
            refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE, token=token)
            if revision not in {b.name for b in refs.branches}:
                api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True, token=token)
    head = _repo_info(api, repo_id, revision=revision, token=token)
    if head is None or not getattr(head, "sha", None):
        raise HubError(f"{repo_id}@{revision}: the repo exists but its head commit could not be read")
    head_sha: str = head.sha
    remote = _list_remote(api, repo_id, head_sha, token)

    # the card, merged with what exists (remote card first, then the local one, then the source's). It is
    # written into the root, except when the root is a download-cache snapshot (never written to): then it
    # travels as bytes in the commit.
    card_bytes: bytes | None = None
    if write_card:
        existing = None
        if "README.md" in remote:
            existing = _download_text(api, repo_id, "README.md", revision=head_sha, token=token)
        if existing is None and (root / "README.md").is_file():
            existing = (root / "README.md").read_text(encoding="utf-8")
        if existing is None and source_repo_id is not None and source_repo_id != repo_id:
            existing = _download_text(api, source_repo_id, "README.md", revision=source_revision, token=token)
        text = card_text(build_card(repo_id=repo_id, info=layout.info, existing=existing, provenance=provenance,
                                    source_repo_id=source_repo_id))
        readme = root / "README.md"
        if snapshot is not None:
            card_bytes = text.encode("utf-8")
        elif not readme.is_file() or readme.read_text(encoding="utf-8") != text:
            atomic_write_text(readme, text)

    files = local_files(root)
    if card_bytes is not None:
        files.pop("README.md", None)
    first_push = not any(p.startswith(MANAGED_PREFIXES) for p in remote)
    message = commit_message or ("Upload LeRobot dataset" if first_push else "Update LeRobot dataset")
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    card_changed = card_bytes is not None and not _bytes_match_remote(card_bytes, remote.get("README.md"))
    if first_push:
        logger.info("first push of %s to %s@%s: uploading %d files", root, repo_id, revision, len(files))
        uploaded = tuple(sorted([*files, *(["README.md"] if card_changed else [])]))
        deleted: tuple[str, ...] = ()
        # the exact checked file list (not upload_folder's own walk, which would follow links out of the root)
        adds = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in sorted(files.items())]
        with hub_errors("uploading the dataset folder", repo_id=repo_id, revision=revision, token=token):
            info = api.create_commit(
                repo_id, operations=adds, commit_message=message, repo_type=REPO_TYPE, revision=revision,
                parent_commit=head_sha, token=token,
            )
            if card_changed:
                info = api.create_commit(
                    repo_id, operations=[CommitOperationAdd("README.md", card_bytes)], commit_message="Add dataset card",
                    repo_type=REPO_TYPE, revision=revision, parent_commit=info.oid, token=token,
                )
        commit_oid, commit_url = info.oid, getattr(info, "commit_url", None)
        unchanged = 0
    else:
        changed = [rel for rel, path in files.items() if rel not in remote or not file_matches_remote(path, remote[rel])]
        stale = sorted(p for p in remote if p.startswith(MANAGED_PREFIXES) and p not in files)
        uploaded = tuple(sorted([*changed, *(["README.md"] if card_changed else [])]))
        deleted = tuple(stale)
        unchanged = len(files) - len(changed)
        if not uploaded and not deleted:
            logger.info("%s@%s is up to date (%d files)", repo_id, revision, len(files))
            commit_oid, commit_url = head_sha, None
        else:
            logger.info("pushing %d changed and %d deleted file(s) to %s@%s (%d unchanged)",
                        len(uploaded), len(deleted), repo_id, revision, unchanged)
            operations: list[Any] = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(files[rel]))
                                     for rel in changed]
            if card_changed:
                operations.append(CommitOperationAdd("README.md", card_bytes))
            operations += [CommitOperationDelete(path_in_repo=rel) for rel in deleted]
            with hub_errors("committing the changed files", repo_id=repo_id, revision=revision, token=token):
                info = api.create_commit(
                    repo_id, operations=operations, commit_message=message, repo_type=REPO_TYPE, revision=revision,
                    parent_commit=head_sha, token=token,
                )
            commit_oid, commit_url = info.oid, getattr(info, "commit_url", None)

    tag_name = None
    if tag:
        _retag(api, repo_id, codebase_version, commit_oid, token)
        tag_name = codebase_version
    endpoint = getattr(api, "endpoint", None) or "https://huggingface.co"
    return PushResult(
        repo_id=repo_id, revision=revision, commit_oid=commit_oid, url=f"{endpoint}/datasets/{repo_id}",
        private=is_private, created=created, first_push=first_push, uploaded=uploaded, deleted=deleted,
        unchanged=unchanged, tag=tag_name, commit_url=commit_url,
    )


def iter_skipped(root: str | Path) -> Iterable[str]:
    """Files under `root` a push leaves out (for `push --dry_run` style listings and tests)."""
    root = Path(root)
    kept = set(local_files(root))
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            if rel not in kept:
                yield rel
