"""The local Hub's state: git-like repos (commits with parents and ids, branches, tags, PR refs) over one
content-addressed object store, and the JSON the Hub reports for a file or folder of a commit.

Nothing here speaks HTTP; the handlers lock `RepoStore._lock` around every read or change.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

RepoType = Literal["model", "dataset", "space"]
LfsMode = Literal["auto", "always"]

REPO_TYPES: dict[str, RepoType] = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX: dict[str, str] = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_THRESHOLD = 10 * 1024 * 1024
DEFAULT_GITATTRIBUTES = (
    "*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    "*.arrow filter=lfs diff=lfs merge=lfs -text\n"
    "*.mp4 filter=lfs diff=lfs merge=lfs -text\n"
    "*.bin filter=lfs diff=lfs merge=lfs -text\n"
    "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    "*.png filter=lfs diff=lfs merge=lfs -text\n"
    "*.jpg filter=lfs diff=lfs merge=lfs -text\n"
)


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's `oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file the Hub stores in git for an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class FileEntry:
    """One file in a commit's tree. `lfs_sha256` is set for files stored through LFS."""

    size: int
    blob_oid: str
    content_sha256: str
    lfs_sha256: str | None = None

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.lfs_sha256 or "", self.size)) if self.lfs_sha256 else 0


@dataclass
class Commit:
    """One commit: its full tree (`files`) and what it added or deleted against its first parent."""

    oid: str
    parents: list[str]
    title: str
    message: str
    author: str
    date: str
    files: dict[str, FileEntry]
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass
class Repo:
    """One repo's commits and refs (branches, tags, PR heads by number), each ref a commit id."""

    repo_id: str
    repo_type: str
    owner: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pull_requests: dict[str, str] = field(default_factory=dict)

    def head(self, branch: str = "main") -> Commit:
        return self.commits[self.branches[branch]]

    def resolve(self, rev: str) -> Commit | None:
        """A branch, tag, `refs/heads|tags|pr/...` ref, full commit id or a unique prefix (>= 7 chars)."""
        for prefix, table in (("refs/heads/", self.branches), ("refs/tags/", self.tags), ("refs/pr/", self.pull_requests)):
            if rev.startswith(prefix) and rev[len(prefix):] in table:
                return self.commits[table[rev[len(prefix):]]]
        if rev in self.branches:
            return self.commits[self.branches[rev]]
        if rev in self.tags:
            return self.commits[self.tags[rev]]
        if rev in self.commits:
            return self.commits[rev]
        if len(rev) >= 7 and all(c in "0123456789abcdef" for c in rev):
            matches = [oid for oid in self.commits if oid.startswith(rev)]
            if len(matches) == 1:
                return self.commits[matches[0]]
        return None

    def history(self, rev: str) -> list[Commit]:
        """First-parent history, newest first."""
        commit = self.resolve(rev)
        out = []
        while commit is not None:
            out.append(commit)
            commit = self.commits[commit.parents[0]] if commit.parents else None
        return out


class RepoStore:
    """Repos by (type, id) and the objects their files point to; thread-safe through one re-entrant lock."""

    def __init__(self, *, lfs_mode: LfsMode = "auto") -> None:
        """`lfs_mode`: "auto" (binary, big or .gitattributes-matched files go to LFS, like the Hub) or "always"."""
        if lfs_mode not in ("auto", "always"):
            raise ValueError(f"lfs_mode must be 'auto' or 'always', got {lfs_mode!r}")
        self.lfs_mode = lfs_mode
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}
        self._objects: dict[str, bytes] = {}  # sha256 -> content (regular and LFS files alike)
        self._lfs: set[str] = set()  # sha256 of objects uploaded through LFS
        self._counter = itertools.count()

    # -- inspection and seeding (for tests) -----------------------------------------------------
    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        with self._lock:
            try:
                return self._repos[(repo_type, repo_id)]
            except KeyError:
                raise KeyError(f"no {repo_type} repo {repo_id!r} on the local Hub") from None

    def has_repo(self, repo_id: str, repo_type: str = "dataset") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def create_repo(self, repo_id: str, *, repo_type: RepoType = "dataset", private: bool = False, owner: str | None = None) -> Repo:
        """Create a repo directly (e.g. one owned by another user) with its initial `.gitattributes` commit."""
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise ValueError(f"{repo_type} repo {repo_id} exists")
            repo = Repo(repo_id, repo_type, owner or repo_id.split("/")[0], private, now())
            self._repos[(repo_type, repo_id)] = repo
            content = DEFAULT_GITATTRIBUTES.encode()
            self._commit(repo, "main", {".gitattributes": self._store(content, lfs=False)}, [], "initial commit", "", repo.owner)
            return repo

    def read_file(self, repo_id: str, path: str, *, revision: str = "main", repo_type: str = "dataset") -> bytes:
        repo = self.repo(repo_id, repo_type)
        with self._lock:
            commit = repo.resolve(revision)
            if commit is None or path not in commit.files:
                raise KeyError(f"{path} not in {repo_id}@{revision}")
            return self._objects[commit.files[path].content_sha256]

    def commits(self, repo_id: str, *, revision: str = "main", repo_type: str = "dataset") -> list[Commit]:
        """First-parent history, newest first."""
        repo = self.repo(repo_id, repo_type)
        with self._lock:
            return repo.history(revision)


    # -- state helpers --------------------------------------------------------------------------
    def _store(self, content: bytes, *, lfs: bool) -> FileEntry:
        sha = hashlib.sha256(content).hexdigest()
        with self._lock:
            self._objects.setdefault(sha, content)
        if lfs:
            return FileEntry(len(content), git_blob_oid(lfs_pointer(sha, len(content))), sha, sha)
        return FileEntry(len(content), git_blob_oid(content), sha)

    def _commit(
        self, repo: Repo, branch: str, files: dict[str, FileEntry], deleted: list[str], title: str, message: str, author: str,
        *, added: list[str] | None = None, parent: str | None = None,
    ) -> Commit:
        parents = [parent] if parent else ([repo.branches[branch]] if branch in repo.branches else [])
        date = now()
        seed = json.dumps([parents, sorted((p, e.blob_oid) for p, e in files.items()), title, message, date, next(self._counter)])
        oid = hashlib.sha1(seed.encode()).hexdigest()
        commit = Commit(oid, parents, title, message, author, date, files, sorted(added if added is not None else files), sorted(deleted))
        repo.commits[oid] = commit
        repo.branches[branch] = oid
        return commit

    def _lfs_path(self, repo: Repo, commit: Commit | None, path: str, size: int, sample: bytes) -> bool:
        if self.lfs_mode == "always":
            return size > 0
        if size >= LFS_THRESHOLD or b"\0" in sample:
            return True
        attributes = b""
        if commit is not None and ".gitattributes" in commit.files:
            attributes = self._objects[commit.files[".gitattributes"].content_sha256]
        for line in attributes.decode(errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2 and "filter=lfs" in parts[1:]:
                pattern = parts[0]
                name = path.rsplit("/", 1)[-1]
                if fnmatch.fnmatch(path, pattern) or ("/" not in pattern and fnmatch.fnmatch(name, pattern)):
                    return True
        return False

    def _tree_oid(self, commit: Commit, folder: str) -> str:
        prefix = folder + "/" if folder else ""
        items = sorted((p, e.blob_oid) for p, e in commit.files.items() if p.startswith(prefix))
        return hashlib.sha1(json.dumps(items).encode()).hexdigest()

    def _last_commit(self, repo: Repo, commit: Commit, path: str) -> dict[str, str]:
        """The newest commit in first-parent history that changed `path` (a file or a folder)."""
        def snapshot(c: Commit) -> list[tuple[str, str]]:
            return sorted((p, e.blob_oid) for p, e in c.files.items() if p == path or p.startswith(path + "/"))

        current = commit
        while current.parents:
            parent = repo.commits[current.parents[0]]
            if snapshot(parent) != snapshot(current):
                break
            current = parent
        return {"id": current.oid, "title": current.title, "date": current.date}

    def _entry_json(self, repo: Repo, commit: Commit, path: str, *, expand: bool) -> dict[str, Any] | None:
        if path in commit.files:
            entry = commit.files[path]
            out: dict[str, Any] = {"type": "file", "oid": entry.blob_oid, "size": entry.size, "path": path}
            if entry.lfs_sha256:
                out["lfs"] = {"oid": entry.lfs_sha256, "size": entry.size, "pointerSize": entry.pointer_size}
        elif path == "" or any(p.startswith(path + "/") for p in commit.files):
            out = {"type": "directory", "oid": self._tree_oid(commit, path), "size": 0, "path": path}
        else:
            return None
        if expand:
            out["lastCommit"] = self._last_commit(repo, commit, path)
            if out["type"] == "file":
                out["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False, "virusNames": None},
                                             "pickleImportScan": None}
        return out
