"""The request handler: every API family's mixin in one class, and the table from (method, path) to a route.

Each request is authenticated, checked against the injected faults of its route, then answered; every answer
(or dropped connection) is recorded in `LocalHub.requests`.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .base import Dropped, HubHTTPError
from .downloads import DownloadRoutes
from .jobs import JobRoutes
from .repos import RepoRoutes
from .storage import REPO_TYPES
from .uploads import UploadRoutes

logger = logging.getLogger(__name__)

Route = tuple[str, Callable[..., int], tuple[Any, ...]]  # (route name for faults and counts, handler, its args)


class Handler(RepoRoutes, UploadRoutes, DownloadRoutes, JobRoutes):
    """One HTTP request to the local Hub (`LocalHub.start` subclasses it with `hub` set)."""

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
        self._body = None
        self._user = None
        self._sent = 0
        self._corrupt = None
        route = "unknown"
        try:
            split = urlsplit(self.path)
            self._query = parse_qs(split.query)
            route, handler, args = self._route(method, split.path)
            delay = self.hub._latency(route)
            if delay > 0:
                time.sleep(delay)
            self._user, self._role = self._authenticate()
            fault = self.hub._take_fault(route, self.path, _range_start(self.headers.get("Range")))
            if fault is not None and fault.drop:
                self._read_partial(fault.after_bytes)
                raise Dropped
            if fault is not None and fault.corrupt:
                self._corrupt = fault.corrupt  # the download route answers a damaged range
            elif fault is not None:
                raise HubHTTPError(fault.status, fault.message)
            status = handler(*args)
            self._record(method, route, status)
        except Dropped:
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
        self.hub._record(method, self.path, route, status, self._user, self._sent, self.headers.get("Range"))


    def _route(self, method: str, raw_path: str) -> Route:
        seg = raw_path.split("/")[1:]
        fixed = self._fixed_route(method, raw_path, seg)
        if fixed is not None:
            return fixed
        if len(seg) >= 4 and seg[0] == "api" and seg[1] in REPO_TYPES:
            found = self._repo_api_route(method, REPO_TYPES[seg[1]], f"{unquote(seg[2])}/{unquote(seg[3])}", seg[4:])
            if found is not None:
                return found
        found = self._git_route(method, seg)
        if found is not None:
            return found
        raise HubHTTPError(404, f"local hub: no route for {method} {raw_path}")

    def _fixed_route(self, method: str, raw_path: str, seg: list[str]) -> Route | None:
        """Account, repo creation/deletion, jobs and the LFS object endpoints."""
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
        return None

    def _repo_api_route(self, method: str, repo_type: str, repo_id: str, rest: list[str]) -> Route | None:
        """`/api/{models|datasets|spaces}/{ns}/{name}[/{action}[/{rev}[/{path}]]]`."""
        if not rest:
            return ("repo_info", self._repo_info, (repo_type, repo_id, None)) if method == "GET" else None
        action, tail = rest[0], rest[1:]
        rev = unquote(tail[0]) if tail else None
        table: dict[tuple[str, str], tuple[str, Callable[..., int]]] = {
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
        if (action, method) not in table:
            return None
        name, fn = table[(action, method)]
        if action == "tree":
            return name, fn, (repo_type, repo_id, rev, "/".join(unquote(s) for s in tail[1:]).strip("/"))
        if action in ("branch", "tag", "settings"):
            return name, fn, (method, repo_type, repo_id, rev)
        return name, fn, (repo_type, repo_id, rev)

    def _git_route(self, method: str, seg: list[str]) -> Route | None:
        """`/{prefix}{ns}/{name}.git/info/lfs/objects/batch` and `/{prefix}{ns}/{name}/resolve/{rev}/{path}`."""
        repo_type = "model"
        if seg and seg[0] in REPO_TYPES and seg[0] != "models":
            repo_type, seg = REPO_TYPES[seg[0]], seg[1:]
        if len(seg) >= 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"] \
                and method == "POST":
            return "lfs_batch", self._lfs_batch, (repo_type, f"{unquote(seg[0])}/{unquote(seg[1][:-4])}")
        if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            path = "/".join(unquote(s) for s in seg[4:])
            repo_id = f"{unquote(seg[0])}/{unquote(seg[1])}"
            return "resolve", self._resolve, (method, repo_type, repo_id, unquote(seg[3]), path)
        return None


def _range_start(header: str | None) -> int | None:
    """The first byte of a `Range: bytes=a-b` header (None without one, or for a suffix range)."""
    if not header or not header.startswith("bytes="):
        return None
    first = header[6:].split(",")[0].partition("-")[0]
    return int(first) if first.isdigit() else None
