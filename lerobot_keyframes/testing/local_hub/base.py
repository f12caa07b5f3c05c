"""What every handler of the local Hub shares: authentication, repo access rules, request bodies, responses.

The API families (`repos`, `uploads`, `downloads`, `jobs`) are mixins over `HandlerBase`; `handler.Handler`
combines them and routes each request. Errors are raised as `HubHTTPError` and answered with the Hub's status
code and `X-Error-Code`, so `huggingface_hub` raises the same error classes as against the real Hub.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from .storage import URL_PREFIX, Commit, Repo

if TYPE_CHECKING:
    from .state import HubState

logger = logging.getLogger(__name__)


class HubHTTPError(Exception):
    """An error answer: HTTP `status`, `message`, and the Hub's `X-Error-Code` (`code`) where it sends one."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class Dropped(Exception):
    """The handler closed the connection on purpose (fault injection)."""


class HandlerBase(BaseHTTPRequestHandler):
    """The plumbing of one request; `hub` is set on the subclass `LocalHub.start` makes."""

    hub: HubState
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    _body: bytes | None
    _user: str | None
    _role: str | None
    _query: dict[str, list[str]]
    _sent: int = 0  # body bytes of the answer (recorded with the request)
    _corrupt: str | None = None  # a range fault to answer with ("short" | "wrong_range")

    def setup(self) -> None:
        super().setup()
        # small header + body writes on a keep-alive connection otherwise wait for delayed ACKs (~40 ms each)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)


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

    def _get_repo(self, repo_type: str, repo_id: str, *, write: bool = False, contribute: bool = False) -> Repo:
        """Private repos are invisible (404) to other users; writes need a write token in the owner's namespace.

        `contribute` (opening a pull request, uploading its LFS objects): any write token that can see the repo,
        as on the Hub, where anyone may open a pull request on a public repo."""
        with self.hub._lock:
            repo = self.hub._repos.get((repo_type, repo_id))
        visible = repo is not None and (not repo.private or (self._user is not None and repo.owner in self._namespaces(self._user)))
        if repo is None or not visible:
            if self._user is None:
                raise HubHTTPError(401, "Repository not found", "RepoNotFound")
            raise HubHTTPError(404, "Repository not found", "RepoNotFound")
        if write or contribute:
            user = self._require_user()
            if write and not contribute and repo.owner not in self._namespaces(user):
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
        if not head and self.command != "HEAD":
            self._sent = len(body)
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        if not head and self.command != "HEAD" and self.hub.bandwidth and body:
            self.end_headers()
            view = memoryview(body)
            for at in range(0, len(body), 64 << 10):  # paced in 64 KiB pieces over the shared link (set_bandwidth)
                piece = view[at : at + (64 << 10)]
                time.sleep(max(0.0, self.hub._link_slot(len(piece)) - time.monotonic()))
                self.wfile.write(piece)
        elif not head and self.command != "HEAD":
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
