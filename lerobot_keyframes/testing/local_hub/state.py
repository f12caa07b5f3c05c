"""The local Hub's state that its handlers read: tokens and organizations, jobs, fault injection, latency,
bandwidth and the record of every request it answered (`server.LocalHub` adds the lifecycle: a server on a free port)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, Literal

from .storage import LfsMode, RepoStore

TokenRole = Literal["write", "read"]
ROUTES = (
    "whoami", "validate_yaml", "create_repo", "delete_repo", "repo_info", "settings", "refs", "tree",
    "paths_info", "preupload", "commit", "commits", "branch", "tag", "lfs_batch", "lfs_upload", "lfs_verify",
    "resolve", "jobs",
)


RangeCorruption = Literal["short", "wrong_range"]


@dataclass
class Fault:
    """An injected failure: answer `status`, or (`drop`) read `after_bytes` and close the connection, or
    (`corrupt`) answer a range request with a short body or the wrong range."""

    route: str
    status: int = 500
    message: str = "injected fault"
    drop: bool = False
    after_bytes: int = 0
    remaining: int = 1
    match: str | None = None  # only requests whose path contains this (e.g. one LFS oid, one file name)
    min_start: int | None = None  # only range requests (`Range: bytes=a-b`) with a >= min_start
    corrupt: RangeCorruption | None = None


@dataclass(frozen=True)
class RequestRecord:
    """One answered request (`status` 0: the connection was dropped on purpose), with the body bytes sent and
    the `Range` header it asked with."""

    method: str
    path: str
    route: str
    status: int
    user: str | None
    bytes: int = 0
    range: str | None = None


class HubState(RepoStore):
    """What the local Hub knows beyond its repos: tokens and orgs, jobs, injected faults and latency, and the
    record of every answered request. Handlers read it as `self.hub`; `server.LocalHub` serves it."""

    TOKEN = "hf_localhub_tester_write_0123456789abcdef"
    READ_TOKEN = "hf_localhub_tester_read_0123456789abcdef"
    OTHER_TOKEN = "hf_localhub_other_write_0123456789abcdef"
    USER = "tester"
    OTHER_USER = "someone-else"

    def __init__(
        self,
        *,
        tokens: Mapping[str, tuple[str, TokenRole]] | None = None,
        orgs: Mapping[str, list[str]] | None = None,
        lfs_mode: LfsMode = "auto",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`tokens`: token -> (user, "write"|"read"); `orgs`: org name -> member users;
        `lfs_mode`: "auto" (binary, big or .gitattributes-matched files go to LFS, like the Hub) or "always"."""
        super().__init__(lfs_mode=lfs_mode)
        self.tokens: dict[str, tuple[str, TokenRole]] = dict(
            tokens
            if tokens is not None
            else {
                self.TOKEN: (self.USER, "write"),
                self.READ_TOKEN: (self.USER, "read"),
                self.OTHER_TOKEN: (self.OTHER_USER, "write"),
            }
        )
        self.orgs = {k: list(v) for k, v in (orgs or {}).items()}
        self._host, self._port = host, port
        self._faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        # what newly submitted jobs look like: their stage and the log lines GET .../logs streams
        self.job_stage = "RUNNING"
        self.job_logs: list[str] = []
        # seconds every request waits before it is answered (a far-away Hub); `set_latency` sets it per route
        self.latency: dict[str, float] = {}
        self.bandwidth: float | None = None  # bytes/s of response bodies, shared by every connection (`set_bandwidth`)
        self._link_free = 0.0  # when the shared link has sent what was queued on it (time.monotonic)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- endpoint -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local Hub is not running (use it as a context manager or call start())")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

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

    def fail_range(self, *, status: int = 500, times: int = 1, match: str | None = None, min_start: int = 0,
                   corrupt: RangeCorruption | None = None) -> None:
        """Fail the next `times` range downloads (`resolve` with a `Range` header) of paths containing `match`
        whose first byte is at or after `min_start`: answer `status`, or with `corrupt` a 206 whose body is short
        ("short": half the bytes under a Content-Range claiming all) or another range ("wrong_range")."""
        with self._lock:
            self._faults.append(Fault(route="resolve", status=status, remaining=times, match=match,
                                      min_start=min_start, corrupt=corrupt))

    def set_latency(self, seconds: float, route: str = "*") -> None:
        """Make every request of `route` (or "*": all) wait `seconds` before it is answered."""
        self._check_route(route)
        with self._lock:
            self.latency[route] = float(seconds)

    def set_bandwidth(self, bytes_per_second: float | None) -> None:
        """Send response bodies over one shared link of this many bytes/s (None: as fast as the machine can)."""
        with self._lock:
            self.bandwidth = float(bytes_per_second) if bytes_per_second else None

    def _link_slot(self, nbytes: int) -> float:
        """Queue `nbytes` on the shared link; returns when (time.monotonic) they have been sent."""
        with self._lock:
            rate = self.bandwidth
            if not rate:
                return 0.0
            self._link_free = max(self._link_free, time.monotonic()) + nbytes / rate
            return self._link_free

    def bytes_sent(self, route: str = "resolve", match: str | None = None) -> int:
        """Body bytes answered on `route` (to paths containing `match`)."""
        return sum(r.bytes for r in self.requests if r.route == route and (match is None or match in r.path))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @staticmethod
    def _check_route(route: str) -> None:
        if route != "*" and route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of {ROUTES} or '*'")

    def _take_fault(self, route: str, path: str, range_start: int | None = None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.match is not None and fault.match not in path:
                    continue
                if fault.min_start is not None and (range_start is None or range_start < fault.min_start):
                    continue
                if fault.route in (route, "*") and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def count(self, route: str, method: str | None = None) -> int:
        return sum(1 for r in self.requests if r.route == route and (method is None or r.method == method))


    def _record(self, method: str, path: str, route: str, status: int, user: str | None, nbytes: int = 0,
                range_header: str | None = None) -> None:
        with self._lock:
            self.requests.append(RequestRecord(method, path, route, status, user, nbytes, range_header))

    def _latency(self, route: str) -> float:
        with self._lock:
            return self.latency.get(route, self.latency.get("*", 0.0))
