"""`lerobot-keyframes review --serve`: the site over HTTP on 127.0.0.1, saving decisions next to it.

The standard library's `http.server`, plus what a review needs: byte ranges (the browser seeks in the
videos with them), `GET /api/decisions` (the saved decisions, or an empty set) and `POST /api/decisions`
(replaces `decisions.json` atomically after checking it is a decisions file of this site's dataset).

Other web pages open in the same browser must neither read the dataset nor write decisions, so:
- the server binds 127.0.0.1 only;
- every request must name this server in `Host` (`127.0.0.1:PORT` or `localhost:PORT`): a page on another
  name that resolves to 127.0.0.1 (DNS rebinding) gets 421;
- a write needs the per-run token that the server writes into the pages it serves (`<meta name="review-token">`,
  sent back as `X-Review-Token`), an `Origin` of this server when the client sends one, a JSON content type
  and a bounded `Content-Length`; a cross-site form or `fetch` can produce none of them.
Every refused or failed request is answered with one JSON line `{"error": ...}` and logged as one line.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..utils.files import atomic_write_json
from ..utils.structured import load_json
from .apply import DECISIONS_FORMAT, DECISIONS_MAX_DEPTH, DECISIONS_VERSION, DecisionsError, load_decisions
from .build import SITE_MARKER

logger = logging.getLogger(__name__)

DECISIONS_FILE = "decisions.json"
API = "/api/decisions"
MAX_BODY = 32 * 1024 * 1024  # bytes; a review of 10k episodes with every row decided stays well below
TOKEN_HEADER = "X-Review-Token"
TOKEN_META = b'<meta name="review-token" content="">'  # in every page (base.jinja); the server fills it in
HOST = "127.0.0.1"


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(SimpleHTTPRequestHandler):
    site: Path
    token: str
    dataset_id: str | None
    lock = threading.Lock()
    _answered = False  # a response was started (an error then closes the connection instead of answering)
    timeout = 60  # seconds a client may stall a request (a slow body holds one thread, not the server)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        logger.debug("%s " + format, self.address_string(), *args)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")  # no other page frames the workbench to click in it
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        super().end_headers()

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, exc: RequestError) -> None:
        logger.warning("review server: refused %s %s from %s: %s", self.command, self.path.split("?")[0][:200],
                       self.address_string(), exc)
        self.close_connection = True
        self._json(exc.status, {"error": str(exc)})

    # -- checks ---------------------------------------------------------------------------------------------

    def _origins(self) -> set[str]:
        port = self.server.server_address[1]
        hosts = {f"{HOST}:{port}", f"localhost:{port}"}
        return hosts | ({HOST, "localhost"} if port == 80 else set())

    def _check_host(self) -> None:
        """DNS rebinding: a page on evil.example resolved to 127.0.0.1 still sends `Host: evil.example`."""
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self._origins():
            raise RequestError(HTTPStatus.MISDIRECTED_REQUEST,
                               f"Host {host[:100]!r} is not this review server (expected {HOST}:"
                               f"{self.server.server_address[1]})")

    def _check_same_origin(self) -> None:
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() not in {f"http://{h}" for h in self._origins()}:
            raise RequestError(HTTPStatus.FORBIDDEN, f"Origin {origin[:100]!r} may not use this review server")
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            raise RequestError(HTTPStatus.FORBIDDEN, f"a {site} request may not use this review server")

    def _check_write(self) -> None:
        self._check_same_origin()
        if not hmac.compare_digest(self.headers.get(TOKEN_HEADER, ""), self.token):
            raise RequestError(HTTPStatus.FORBIDDEN, f"missing or wrong {TOKEN_HEADER} (reload the page from this "
                                                     "server: the token changes with every run)")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be application/json, not "
                                                                  f"{ctype[:100]!r}")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked")
        raw = (self.headers.get("Content-Length") or "").strip()
        if not raw.isdigit() or not raw.isascii():
            raise RequestError(HTTPStatus.LENGTH_REQUIRED if not raw else HTTPStatus.BAD_REQUEST,
                               f"Content-Length must be a number of bytes, got {raw[:40]!r}")
        length = int(raw)
        if not 0 < length <= MAX_BODY:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length else HTTPStatus.BAD_REQUEST,
                               f"body of {length} bytes: a decisions file is 1 to {MAX_BODY} bytes")
        body = self.rfile.read(length)
        if len(body) != length:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"body ended after {len(body)} of {length} bytes")
        return body

    # -- requests -------------------------------------------------------------------------------------------

    def send_response(self, code: int, message: str | None = None) -> None:
        self._answered = True
        super().send_response(code, message)

    def handle_one_request(self) -> None:
        """Every failure of a request is one answer (unless one was under way) and one log line, no traceback."""
        self._answered = False
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            logger.debug("review server: %s: connection ended (%s)", self.address_string(), exc)
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - one line in the log and to the client; the server goes on
            self.close_connection = True
            if not isinstance(exc, RequestError):
                logger.warning("review server: %s %s failed: %s: %s", getattr(self, "command", "?"),
                               str(getattr(self, "path", ""))[:200], type(exc).__name__, exc)
                exc = RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
            if self._answered:
                return
            try:
                self._refuse(exc)
            except OSError:
                pass

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._check_host()
        super().do_HEAD()

    def do_GET(self) -> None:  # noqa: N802
        self._check_host()
        path = self.path.split("?")[0]
        if path == API:
            self._check_same_origin()
            self._get_decisions()
            return
        if path.split("/")[-1] == SITE_MARKER:
            raise RequestError(HTTPStatus.NOT_FOUND, "not part of the site")
        file = Path(self.translate_path(self.path))
        if file.is_dir() and path.endswith("/") and (file / "index.html").is_file():
            file = file / "index.html"
        if file.suffix == ".html" and file.is_file():
            self._page(file)
            return
        rng = self.headers.get("Range")
        if rng:
            self._range(file, rng)
            return
        super().do_GET()

    def _get_decisions(self) -> None:
        path = self.site / DECISIONS_FILE
        if not path.is_file():
            self._json(200, {"format": DECISIONS_FORMAT, "version": DECISIONS_VERSION, "dataset_id": self.dataset_id,
                             "episodes": {}})
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{path}: cannot be read ({exc})") from None
        self._json(200, data)

    def _page(self, file: Path) -> None:
        """A page with this run's write token filled in."""
        body = file.read_bytes().replace(TOKEN_META, TOKEN_META.replace(b'""', f'"{self.token}"'.encode()), 1)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _range(self, path: Path, header: str) -> None:
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
        if not path.is_file() or not m or m.groups() == ("", ""):
            super().do_GET()
            return
        size = path.stat().st_size
        if m.group(1):
            start, end = int(m.group(1)), int(m.group(2)) if m.group(2) else size - 1
        else:
            start, end = max(0, size - int(m.group(2))), size - 1
        end = min(end, size - 1)
        if start > end:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def do_POST(self) -> None:  # noqa: N802
        self._check_host()
        if self.path.split("?")[0] != API:
            raise RequestError(HTTPStatus.NOT_FOUND, f"POST only to {API}")
        self._check_write()
        body = self._read_body()
        try:
            payload = load_json(body, "POST body", max_bytes=None, max_depth=DECISIONS_MAX_DEPTH, max_nodes=None)
            if not isinstance(payload, dict):
                raise DecisionsError("POST body is not a decisions object")
            data = load_decisions(payload)
        except (ValueError, DecisionsError) as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, " ".join(str(exc).split())[:500]) from None
        if self.dataset_id is not None and data["dataset_id"] != self.dataset_id:
            raise RequestError(HTTPStatus.CONFLICT, f"these decisions were made for another dataset "
                                                    f"({data.get('dataset')}), not the one of this site")
        path = self.site / DECISIONS_FILE
        with self.lock:
            atomic_write_json(path, data)
        self._json(200, {"saved": str(path), "episodes": len(data["episodes"])})

    def list_directory(self, path: str | Path) -> None:  # type: ignore[override]
        raise RequestError(HTTPStatus.NOT_FOUND, "no such page")

    def do_PUT(self) -> None:  # noqa: N802
        raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"only GET, and POST to {API}")

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT  # a cross-origin preflight gets no CORS grant


class ReviewServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` that logs a failed connection as one line instead of printing a traceback."""

    daemon_threads = True
    token: str

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        logger.debug("review server: %s: %s: %s", client_address, type(exc).__name__, exc)


def _site_dataset_id(site: Path) -> str | None:
    try:
        marker = json.loads((site / SITE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = marker.get("dataset_id") if isinstance(marker, dict) else None
    return value if isinstance(value, str) else None


def make_server(site: str | Path, *, host: str = HOST, port: int = 8765) -> ReviewServer:
    """A server for the built site at `site` (call `serve_forever()`; port 0 picks a free one).

    `server.token` is this run's write token (written into every page the server sends)."""
    if host != HOST:
        raise ValueError(f"the review server only binds to the loopback address {HOST}, not {host!r}")
    site = Path(site).resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site}: no index.html (build the site first)")
    token = secrets.token_urlsafe(24)
    handler = type("ReviewHandler", (_Handler,), {"site": site, "token": token,
                                                  "dataset_id": _site_dataset_id(site)})
    server = ReviewServer((host, port), partial(handler, directory=str(site)))
    server.token = token
    return server


def serve(site: str | Path, *, host: str = HOST, port: int = 8765) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = make_server(site, host=host, port=port)
    h, p = server.server_address[:2]
    print(f"review at http://{h}:{p}/index.html (decisions saved to {Path(site) / DECISIONS_FILE}); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
