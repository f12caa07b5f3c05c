"""A local, in-memory Hugging Face Hub for tests: stock `huggingface_hub` and `datasets` talk to it over HTTP.

Why: push, download, tag and Jobs code must be tested against the real wire protocol, never the public Hub.
The server keeps git-like state per repo (commits with parents and ids, branches, tags, an LFS object
store) and answers the endpoints `huggingface_hub` 2.x uses with the same status codes and `X-Error-Code`
headers as the Hub, so client-side error classes (`RepositoryNotFoundError`, `RevisionNotFoundError`,
`RemoteEntryNotFoundError`, ...) come out as they would in production.

    hub = LocalHub()
    with hub as url:                      # the endpoint, e.g. http://127.0.0.1:43121
        # HF_ENDPOINT=url, HF_TOKEN=LocalHub.TOKEN, HF_HUB_DISABLE_XET=1
        hub.fail_next("commit", status=500)   # fault injection
        ...

Uploads must go through the LFS protocol (`HF_HUB_DISABLE_XET=1`); Xet is not implemented.
Faults: `fail_next(route, status)` answers an error, `drop_next(route, after_bytes)` reads part of the
request body and closes the connection without answering (an interrupted upload).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
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
ROUTES = (
    "whoami", "validate_yaml", "create_repo", "delete_repo", "repo_info", "settings", "refs", "tree",
    "paths_info", "preupload", "commit", "commits", "branch", "tag", "lfs_batch", "lfs_upload", "lfs_verify",
    "resolve", "jobs",
)


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's `oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
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


@dataclass
class Fault:
    route: str
    status: int = 500
    message: str = "injected fault"
    drop: bool = False
    after_bytes: int = 0
    remaining: int = 1
    match: str | None = None  # only requests whose path contains this (e.g. one LFS oid, one file name)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    route: str
    status: int
    user: str | None


class HubHTTPError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class _Dropped(Exception):
    """The handler closed the connection on purpose (fault injection)."""


class LocalHub:
    """An in-memory Hub served on 127.0.0.1. Entering the context starts it and yields its endpoint URL."""

    TOKEN = "hf_localhub_tester_write_0123456789abcdef"
    READ_TOKEN = "hf_localhub_tester_read_0123456789abcdef"
    OTHER_TOKEN = "hf_localhub_other_write_0123456789abcdef"
    USER = "tester"
    OTHER_USER = "someone-else"

    def __init__(
        self,
        *,
        tokens: Mapping[str, tuple[str, str]] | None = None,
        orgs: Mapping[str, list[str]] | None = None,
        lfs_mode: str = "auto",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`tokens`: token -> (user, "write"|"read"); `orgs`: org name -> member users;
        `lfs_mode`: "auto" (binary, big or .gitattributes-matched files go to LFS, like the Hub) or "always"."""
        self.tokens: dict[str, tuple[str, str]] = dict(
            tokens
            if tokens is not None
            else {
                self.TOKEN: (self.USER, "write"),
                self.READ_TOKEN: (self.USER, "read"),
                self.OTHER_TOKEN: (self.OTHER_USER, "write"),
            }
        )
        self.orgs = {k: list(v) for k, v in (orgs or {}).items()}
        if lfs_mode not in ("auto", "always"):
            raise ValueError(f"lfs_mode must be 'auto' or 'always', got {lfs_mode!r}")
        self.lfs_mode = lfs_mode
        self._host, self._port = host, port
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], Repo] = {}
        self._objects: dict[str, bytes] = {}  # sha256 -> content (regular and LFS files alike)
        self._lfs: set[str] = set()  # sha256 of objects uploaded through LFS
        self._faults: list[Fault] = []
        self._counter = itertools.count()
        self.requests: list[RequestRecord] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        # what newly submitted jobs look like: their stage and the log lines GET .../logs streams
        self.job_stage = "RUNNING"
        self.job_logs: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local Hub is not running (use it as a context manager or call start())")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        if self._server is None:
            hub = self

            class Handler(_Handler):
                pass

            Handler.hub = hub
            self._server = ThreadingHTTPServer((self._host, self._port), Handler)
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="local-hub", daemon=True)
            self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- fault injection ------------------------------------------------------------------------
    def fail_next(self, route: str, *, status: int = 500, times: int = 1, message: str = "injected fault",
                  match: str | None = None) -> None:
        """Answer the next `times` requests of `route` (see ROUTES, or "*") with `status`; with `match`, only
        requests whose path contains it."""
        self._check_route(route)
        with self._lock:
            self._faults.append(Fault(route=route, status=status, message=message, remaining=times, match=match))

    def drop_next(self, route: str, *, times: int = 1, after_bytes: int = 1024, match: str | None = None) -> None:
        """Read at most `after_bytes` of the next `times` request bodies of `route` (whose path contains `match`,
        if given), then close the connection without answering: an upload interrupted mid-way."""
        self._check_route(route)
        with self._lock:
            self._faults.append(Fault(route=route, drop=True, after_bytes=after_bytes, remaining=times, match=match))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @staticmethod
    def _check_route(route: str) -> None:
        if route != "*" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {ROUTES} or '*'")

    def _take_fault(self, route: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match is not None and fault.match not in path:
                    continue
                if fault.route in (route, "*") and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

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

    def create_repo(self, repo_id: str, *, repo_type: str = "dataset", private: bool = False, owner: str | None = None) -> Repo:
        """Create a repo directly (e.g. one owned by another user) with its initial `.gitattributes` commit."""
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise ValueError(f"{repo_type} repo {repo_id} exists")
            repo = Repo(repo_id, repo_type, owner or repo_id.split("/")[0], private, _now())
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

    def count(self, route: str, method: str | None = None) -> int:
        return sum(1 for r in self.requests if r.route == route and (method is None or r.method == method))

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
        date = _now()
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


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"

    # -- plumbing -------------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        # small header + body writes on a keep-alive connection otherwise wait for delayed ACKs (~40 ms each)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._body: bytes | None = None
        self._user: str | None = None
        route = "unknown"
        try:
            split = urlsplit(self.path)
            self._query = parse_qs(split.query)
            route, handler, args = self._route(method, split.path)
            self._user, self._role = self._authenticate()
            fault = self.hub._take_fault(route, self.path)
            if fault is not None and fault.drop:
                self._read_partial(fault.after_bytes)
                raise _Dropped
            if fault is not None:
                raise HubHTTPError(fault.status, fault.message)
            status = handler(*args)
            self._record(method, route, status)
        except _Dropped:
            self._record(method, route, 0)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except HubHTTPError as exc:
            self._drain()
            self._send_json({"error": exc.message}, status=exc.status, error_code=exc.code, error_message=exc.message)
            self._record(method, route, exc.status)
        except Exception as exc:  # a bug in the fake must surface as a 500 the test can see
            logger.exception("local hub: unhandled error on %s %s", method, self.path)
            self._drain()
            self._send_json({"error": f"local hub internal error: {exc!r}"}, status=500)
            self._record(method, route, 500)

    def _record(self, method: str, route: str, status: int) -> None:
        with self.hub._lock:
            self.hub.requests.append(RequestRecord(method, self.path, route, status, self._user))

    def _route(self, method: str, raw_path: str) -> tuple[str, Any, tuple[Any, ...]]:
        seg = raw_path.split("/")[1:]
        if raw_path == "/api/whoami-v2":
            return "whoami", self._whoami, ()
        if raw_path == "/api/agent-harnesses" and method == "GET":
            return "agent_harnesses", lambda: self._send_json({"standardEnvVars": [], "harnesses": {}}), ()
        if raw_path == "/api/validate-yaml" and method == "POST":
            return "validate_yaml", self._validate_yaml, ()
        if raw_path == "/api/repos/create" and method == "POST":
            return "create_repo", self._create_repo, ()
        if raw_path == "/api/repos/delete" and method == "DELETE":
            return "delete_repo", self._delete_repo, ()
        if len(seg) >= 3 and seg[0] == "api" and seg[1] == "jobs":
            return "jobs", self._jobs, (method, [unquote(s) for s in seg[2:]])
        if len(seg) >= 2 and seg[0] == "_lfs":
            if seg[1] == "upload" and method == "PUT" and len(seg) == 3:
                return "lfs_upload", self._lfs_upload, (seg[2],)
            if seg[1] == "verify" and method == "POST":
                return "lfs_verify", self._lfs_verify, ()
        if len(seg) >= 4 and seg[0] == "api" and seg[1] in REPO_TYPES:
            repo_type = REPO_TYPES[seg[1]]
            repo_id = f"{unquote(seg[2])}/{unquote(seg[3])}"
            rest = seg[4:]
            if not rest and method == "GET":
                return "repo_info", self._repo_info, (repo_type, repo_id, None)
            if rest:
                action, tail = rest[0], rest[1:]
                rev = unquote(tail[0]) if tail else None
                table: dict[tuple[str, str], tuple[str, Any]] = {
                    ("revision", "GET"): ("repo_info", self._repo_info),
                    ("refs", "GET"): ("refs", self._refs),
                    ("tree", "GET"): ("tree", self._tree),
                    ("paths-info", "POST"): ("paths_info", self._paths_info),
                    ("preupload", "POST"): ("preupload", self._preupload),
                    ("commit", "POST"): ("commit", self._commit_endpoint),
                    ("commits", "GET"): ("commits", self._commits),
                    ("branch", "POST"): ("branch", self._branch),
                    ("branch", "DELETE"): ("branch", self._branch),
                    ("tag", "POST"): ("tag", self._tag),
                    ("tag", "DELETE"): ("tag", self._tag),
                    ("settings", "PUT"): ("settings", self._settings),
                }
                if (action, method) in table:
                    name, fn = table[(action, method)]
                    if action == "tree":
                        path = "/".join(unquote(s) for s in tail[1:]).strip("/")
                        return name, fn, (repo_type, repo_id, rev, path)
                    if action in ("branch", "tag", "settings"):
                        return name, fn, (method, repo_type, repo_id, rev)
                    return name, fn, (repo_type, repo_id, rev)
        # /{prefix}{ns}/{name}.git/info/lfs/objects/batch and /{prefix}{ns}/{name}/resolve/{rev}/{path}
        repo_type = "model"
        if seg and seg[0] in REPO_TYPES and seg[0] != "models":
            repo_type, seg = REPO_TYPES[seg[0]], seg[1:]
        if len(seg) >= 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"] and method == "POST":
            return "lfs_batch", self._lfs_batch, (repo_type, f"{unquote(seg[0])}/{unquote(seg[1][:-4])}")
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            path = "/".join(unquote(s) for s in seg[4:])
            return "resolve", self._resolve, (method, repo_type, f"{unquote(seg[0])}/{unquote(seg[1])}", unquote(seg[3]), path)
        raise HubHTTPError(404, f"local hub: no route for {method} {raw_path}")

    def _authenticate(self) -> tuple[str | None, str | None]:
        header = self.headers.get("Authorization")
        if not header:
            return None, None
        scheme, _, token = header.partition(" ")
        found = self.hub.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        return found

    def _require_user(self) -> str:
        if self._user is None:
            raise HubHTTPError(401, "Invalid credentials in Authorization header")
        return self._user

    def _namespaces(self, user: str) -> set[str]:
        return {user} | {org for org, members in self.hub.orgs.items() if user in members}

    def _get_repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        """Private repos are invisible (404) to other users; writes need a write token in the owner's namespace."""
        with self.hub._lock:
            repo = self.hub._repos.get((repo_type, repo_id))
        visible = repo is not None and (not repo.private or (self._user is not None and repo.owner in self._namespaces(self._user)))
        if repo is None or not visible:
            if self._user is None:
                raise HubHTTPError(401, "Repository not found", "RepoNotFound")
            raise HubHTTPError(404, "Repository not found", "RepoNotFound")
        if write:
            user = self._require_user()
            if repo.owner not in self._namespaces(user):
                raise HubHTTPError(403, f"You don't have the rights to write to {repo_type}s/{repo_id}")
            if self._role != "write":
                raise HubHTTPError(403, "This token has read-only access; a write token is required")
        return repo

    def _resolve_rev(self, repo: Repo, rev: str | None) -> Commit:
        commit = repo.resolve(rev or "main")
        if commit is None:
            raise HubHTTPError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _content_length(self) -> int:
        return int(self.headers.get("Content-Length") or 0)

    def _read_body(self) -> bytes:
        if self._body is not None:
            return self._body
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self._body = b"".join(chunks)
        else:
            self._body = self.rfile.read(self._content_length())
        return self._body

    def _read_partial(self, limit: int) -> None:
        length = self._content_length()
        if length:
            self.rfile.read(min(limit, max(length // 2, 1)))
        elif limit:
            self.rfile.read1(limit) if hasattr(self.rfile, "read1") else self.rfile.read(limit)

    def _drain(self) -> None:
        try:
            if self._body is None and (self._content_length() or self.headers.get("Transfer-Encoding")):
                self._read_body()
        except (OSError, ValueError):
            self.close_connection = True

    def _json_body(self) -> Any:
        raw = self._read_body()
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise HubHTTPError(400, f"malformed JSON body: {exc}") from exc

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None, *, head: bool = False) -> int:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if not head and self.command != "HEAD":
            self._headers_buffer.append(b"\r\n" + body)  # one write for headers and body
            self.flush_headers()
        else:
            self.end_headers()
        return status

    def _send_json(self, payload: Any, *, status: int = 200, error_code: str | None = None,
                   error_message: str | None = None, headers: Mapping[str, str] | None = None) -> int:
        extra = {"Content-Type": "application/json", **(headers or {})}
        if error_code:
            extra["X-Error-Code"] = error_code
        if error_message:
            extra["X-Error-Message"] = error_message.replace("\n", " ")
        return self._send(status, json.dumps(payload).encode(), extra)

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.hub.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    # -- account --------------------------------------------------------------------------------
    def _whoami(self) -> int:
        user = self._require_user()
        orgs = [{"type": "org", "name": org, "roleInOrg": "write"} for org, members in self.hub.orgs.items() if user in members]
        return self._send_json({
            "type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user, "fullname": user,
            "email": f"{user}@localhost", "emailVerified": True, "isPro": True, "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": self._role}},
        })

    def _validate_yaml(self) -> int:
        payload = self._json_body()
        content = payload.get("content")
        if not isinstance(content, str):
            raise HubHTTPError(400, "'content' must be a string")
        if content.startswith("---"):
            lines = content.splitlines()
            if not any(line.strip() == "---" for line in lines[1:]):
                raise HubHTTPError(400, "Invalid metadata in README.md: the YAML block is not closed with '---'")
        return self._send_json({"errors": [], "warnings": []})

    # -- repos ----------------------------------------------------------------------------------
    def _create_repo(self) -> int:
        user = self._require_user()
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        namespace = payload.get("organization") or user
        name = payload.get("name")
        if repo_type not in URL_PREFIX or not name:
            raise HubHTTPError(400, "invalid repo type or name")
        if namespace not in self._namespaces(user) or self._role != "write":
            raise HubHTTPError(403, f"You don't have the rights to create a {repo_type} under the namespace \"{namespace}\"")
        repo_id = f"{namespace}/{name}"
        private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
        with self.hub._lock:
            if (repo_type, repo_id) in self.hub._repos:
                url = f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}"
                self._send_json({"error": f"You already created this {repo_type} repo", "url": url}, status=409,
                                error_message=f"You already created this {repo_type} repo")
                return 409
            repo = self.hub.create_repo(repo_id, repo_type=repo_type, private=private, owner=namespace)
        return self._send_json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> int:
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self._require_user()}/{payload.get('name')}"
        self._get_repo(repo_type, repo_id, write=True)
        with self.hub._lock:
            del self.hub._repos[(repo_type, repo_id)]
        return self._send_json({})

    def _settings(self, method: str, repo_type: str, repo_id: str, _rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        payload = self._json_body()
        with self.hub._lock:
            if "private" in payload:
                repo.private = bool(payload["private"])
            if "visibility" in payload:
                repo.private = payload["visibility"] != "public"
        return self._send_json({"private": repo.private})

    def _repo_info(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            commit = self._resolve_rev(repo, rev)
            blobs = self._query.get("blobs", ["false"])[0].lower() in ("1", "true")
            siblings = []
            for path, entry in sorted(commit.files.items()):
                sib: dict[str, Any] = {"rfilename": path}
                if blobs:
                    sib.update(size=entry.size, blobId=entry.blob_oid)
                    if entry.lfs_sha256:
                        sib["lfs"] = {"sha256": entry.lfs_sha256, "size": entry.size, "pointerSize": entry.pointer_size}
                siblings.append(sib)
            return self._send_json({
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo.owner,
                "sha": commit.oid, "lastModified": commit.date, "createdAt": repo.created_at, "private": repo.private,
                "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
                "usedStorage": sum(e.size for e in commit.files.values()),
            })

    def _refs(self, repo_type: str, repo_id: str, _rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            def refs(table: dict[str, str], kind: str) -> list[dict[str, str]]:
                return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in sorted(table.items())]

            payload = {"branches": refs(repo.branches, "heads"), "tags": refs(repo.tags, "tags"), "converts": []}
            if self._query.get("include_prs"):
                payload["pullRequests"] = refs(repo.pull_requests, "pr")
        return self._send_json(payload)

    def _tree(self, repo_type: str, repo_id: str, rev: str | None, path: str) -> int:
        repo = self._get_repo(repo_type, repo_id)
        recursive = self._query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self._query.get("expand", ["false"])[0].lower() in ("1", "true")
        with self.hub._lock:
            commit = self._resolve_rev(repo, rev)
            if path and not any(p.startswith(path + "/") for p in commit.files):
                raise HubHTTPError(404, f"{path} does not exist on {rev}", "EntryNotFound")
            prefix = path + "/" if path else ""
            names: set[str] = set()
            for p in commit.files:
                if not p.startswith(prefix):
                    continue
                parts = p[len(prefix):].split("/")
                if recursive:
                    names.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
                else:
                    names.add(prefix + parts[0])
            entries = [self._entry(repo, commit, n, expand) for n in sorted(names)]
        return self._send_json(entries)

    def _entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
        out = self.hub._entry_json(repo, commit, path, expand=expand)
        assert out is not None
        return out

    def _paths_info(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id)
        ctype = self.headers.get("Content-Type", "")
        raw = self._read_body()
        if "json" in ctype:
            payload = json.loads(raw or b"{}")
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(raw.decode())
            paths = form.get("paths", [])
            expand = form.get("expand", ["false"])[0].lower() in ("1", "true")
        with self.hub._lock:
            commit = self._resolve_rev(repo, rev)
            out = []
            for p in paths:
                entry = self.hub._entry_json(repo, commit, p.strip("/"), expand=expand)
                if entry is not None:
                    out.append(entry)
        return self._send_json(out)

    def _commits(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            self._resolve_rev(repo, rev)
            history = repo.history(rev or "main")
        return self._send_json([
            {"id": c.oid, "title": c.title, "message": c.message, "authors": [{"user": c.author}], "date": c.date}
            for c in history
        ])

    def _branch(self, method: str, repo_type: str, repo_id: str, branch: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        if not branch:
            raise HubHTTPError(400, "branch name missing")
        with self.hub._lock:
            if method == "DELETE":
                if branch == "main":
                    raise HubHTTPError(403, "Cannot delete the default branch")
                if branch not in repo.branches:
                    raise HubHTTPError(404, f"Branch {branch} not found", "RevisionNotFound")
                del repo.branches[branch]
                return self._send_json({})
            payload = self._json_body()
            if branch in repo.branches:
                raise HubHTTPError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._resolve_rev(repo, payload.get("startingPoint") or "main")
            repo.branches[branch] = start.oid
        return self._send_json({})

    def _tag(self, method: str, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        with self.hub._lock:
            if method == "DELETE":
                if rev not in repo.tags:
                    raise HubHTTPError(404, f"Tag {rev} not found", "RevisionNotFound")
                del repo.tags[rev]
                return self._send_json({})
            payload = self._json_body()
            tag = payload.get("tag")
            if not tag:
                raise HubHTTPError(400, "'tag' is required")
            commit = self._resolve_rev(repo, rev)
            if tag in repo.tags:
                raise HubHTTPError(409, f"Tag {tag} already exists")
            repo.tags[tag] = commit.oid
        return self._send_json({})

    # -- uploads --------------------------------------------------------------------------------
    def _preupload(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        payload = self._json_body()
        with self.hub._lock:
            commit = repo.resolve(rev or "main")
            if commit is None and not self._query.get("create_pr"):
                raise HubHTTPError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            files = []
            for item in payload.get("files", []):
                path, size = item["path"], int(item["size"])
                sample = base64.b64decode(item.get("sample") or "")
                lfs = self.hub._lfs_path(repo, commit, path, size, sample)
                existing = commit.files.get(path) if commit is not None else None
                oid = None
                if existing is not None:
                    oid = existing.lfs_sha256 if (lfs and existing.lfs_sha256) else existing.blob_oid
                files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return self._send_json({"files": files, "commitOid": commit.oid if commit else None})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        payload = self._json_body()
        if payload.get("operation") != "upload":
            raise HubHTTPError(400, "only the upload operation is supported")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not isinstance(oid, str) or len(oid) != 64 or not isinstance(size, int) or size < 0:
                item["error"] = {"code": 422, "message": "invalid oid or size"}
                item["oid"], item["size"] = str(oid), int(size or 0)
            else:
                with self.hub._lock:
                    present = oid in self.hub._objects and len(self.hub._objects[oid]) == size
                if not present:
                    item["actions"] = {
                        "upload": {"href": f"{self.hub.url}/_lfs/upload/{oid}?size={size}&repo={repo.repo_id}", "header": {}},
                        "verify": {"href": f"{self.hub.url}/_lfs/verify", "header": {}},
                    }
            objects.append(item)
        return self._send_json({"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_upload(self, oid: str) -> int:
        body = self._read_body()
        expected = int(self._query.get("size", [len(body)])[0])
        if len(body) != expected or hashlib.sha256(body).hexdigest() != oid:
            raise HubHTTPError(400, f"uploaded content does not match oid {oid} / size {expected}")
        with self.hub._lock:
            self.hub._objects[oid] = body
            self.hub._lfs.add(oid)
        return self._send(200, b"")

    def _lfs_verify(self) -> int:
        payload = self._json_body()
        with self.hub._lock:
            ok = payload.get("oid") in self.hub._objects
        if not ok:
            raise HubHTTPError(404, f"LFS object {payload.get('oid')} not found")
        return self._send_json({"success": True})

    def _commit_endpoint(self, repo_type: str, repo_id: str, rev: str | None) -> int:
        repo = self._get_repo(repo_type, repo_id, write=True)
        lines = [json.loads(line) for line in self._read_body().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubHTTPError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        create_pr = bool(self._query.get("create_pr"))
        branch = rev or "main"
        with self.hub._lock:
            if branch not in repo.branches:
                if repo.resolve(branch) is not None:
                    raise HubHTTPError(400, f"Cannot commit to {branch}: not a branch")
                raise HubHTTPError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            head = repo.head(branch)
            parent = header.get("parentCommit")
            if parent and not create_pr and not head.oid.startswith(parent):
                raise HubHTTPError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            added, deleted = [], []
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = str(value.get("path", "")).strip("/")
                if key == "file":
                    content = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
                    files[path] = self.hub._store(content, lfs=False)
                    added.append(path)
                elif key == "lfsFile":
                    oid = value["oid"]
                    if oid not in self.hub._objects:
                        raise HubHTTPError(422, f"LFS object {oid} for {path} was never uploaded")
                    size = len(self.hub._objects[oid])
                    if value.get("size") is not None and int(value["size"]) != size:
                        raise HubHTTPError(422, f"LFS object {oid} for {path}: size mismatch")
                    files[path] = FileEntry(size, git_blob_oid(lfs_pointer(oid, size)), oid, oid)
                    added.append(path)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubHTTPError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                    deleted.append(path)
                elif key == "deletedFolder":
                    gone = [p for p in files if p.startswith(path + "/")]
                    if not gone:
                        raise HubHTTPError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in gone:
                        del files[p]
                    deleted.extend(gone)
                else:
                    raise HubHTTPError(400, f"unknown commit operation {key!r}")
            title = header.get("summary") or "Update"
            author = self._user or "anonymous"
            if create_pr:
                num = len(repo.pull_requests) + 1
                ref = f"__pr_{num}"
                repo.branches[ref] = head.oid
                commit = self.hub._commit(repo, ref, files, deleted, title, header.get("description", ""), author, added=added)
                del repo.branches[ref]
                repo.pull_requests[str(num)] = commit.oid
                pr_url = f"{self._repo_url(repo)}/discussions/{num}"
            else:
                commit = self.hub._commit(repo, branch, files, deleted, title, header.get("description", ""), author, added=added)
                pr_url = None
        payload = {"success": True, "commitOid": commit.oid, "commitUrl": f"{self._repo_url(repo)}/commit/{commit.oid}",
                   "hookOutput": ""}
        if pr_url:
            payload["pullRequestUrl"] = pr_url
        return self._send_json(payload)

    # -- downloads ------------------------------------------------------------------------------
    def _resolve(self, method: str, repo_type: str, repo_id: str, rev: str, path: str) -> int:
        repo = self._get_repo(repo_type, repo_id)
        with self.hub._lock:
            commit = self._resolve_rev(repo, rev)
            entry = commit.files.get(path)
            if entry is None:
                self._send_json({"error": "Entry not found"}, status=404, error_code="EntryNotFound",
                                error_message="Entry not found", headers={"X-Repo-Commit": commit.oid})
                return 404
            content = self.hub._objects[entry.content_sha256]
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if entry.lfs_sha256:
            headers.update({"ETag": f'"{entry.lfs_sha256}"', "X-Linked-Etag": f'"{entry.lfs_sha256}"',
                            "X-Linked-Size": str(entry.size)})
        else:
            headers["ETag"] = f'"{entry.blob_oid}"'
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            start_s, _, end_s = range_header[6:].split(",")[0].partition("-")
            size = len(content)
            if start_s:
                start, end = int(start_s), min(int(end_s) if end_s else size - 1, size - 1)
            else:
                start, end = max(size - int(end_s), 0), size - 1
            if start >= size or start > end:
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}"}, head=method == "HEAD")
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return self._send(206, content[start : end + 1], headers, head=method == "HEAD")
        return self._send(200, content, headers, head=method == "HEAD")

    # -- jobs -----------------------------------------------------------------------------------
    def _jobs(self, method: str, parts: list[str]) -> int:
        user = self._require_user()
        namespace = parts[0]
        if namespace not in self._namespaces(user):
            raise HubHTTPError(403, f"You cannot run jobs under the namespace {namespace!r}")
        if method == "POST" and len(parts) == 1:
            spec = self._json_body()
            job_id = hashlib.sha1(f"{time.time_ns()}-{next(self.hub._counter)}".encode()).hexdigest()[:24]
            job = {**spec, "id": job_id, "createdAt": _now(), "owner": {"id": user, "name": namespace, "type": "user"},
                   "status": {"stage": self.hub.job_stage, "message": None},
                   "secrets": dict.fromkeys(spec.get("secrets") or {}, "***")}
            with self.hub._lock:
                self.hub.jobs[job_id] = {"spec": spec, "info": job, "logs": list(self.hub.job_logs)}
            return self._send_json(job)
        if len(parts) >= 2:
            with self.hub._lock:
                job = self.hub.jobs.get(parts[1])
            if job is None:
                raise HubHTTPError(404, f"Job {parts[1]} not found")
            if method == "GET" and len(parts) == 2:
                return self._send_json(job["info"])
            if method == "GET" and parts[2:] == ["logs"]:
                lines = ["===== Job started =====", *job["logs"]]
                body = "".join(f"data: {json.dumps({'data': line, 'timestamp': _now()})}\n\n" for line in lines)
                return self._send(200, body.encode(), {"Content-Type": "text/event-stream"})
            if method == "POST" and parts[2:] == ["cancel"]:
                job["info"]["status"] = {"stage": "CANCELED", "message": None}
                return self._send_json({})
        raise HubHTTPError(404, f"local hub: no jobs route for {method} {'/'.join(parts)}")


def iter_repo_files(hub: LocalHub, repo_id: str, *, revision: str = "main", repo_type: str = "dataset") -> Iterator[str]:
    """Paths of the files at `revision`, sorted (a test convenience)."""
    repo = hub.repo(repo_id, repo_type)
    with hub._lock:
        commit = repo.resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_id}: no revision {revision}")
        yield from sorted(commit.files)
