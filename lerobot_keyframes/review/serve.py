"""`lerobot-keyframes review --serve`: the site over HTTP on 127.0.0.1, saving decisions next to it.

The standard library's `http.server`, plus what a review needs: byte ranges (the browser seeks in the
videos with them), `GET /api/decisions` (the saved decisions, or an empty set) and `POST /api/decisions`
(replaces `decisions.json` atomically after checking it is a decisions file). Only loopback addresses are
accepted: the server must not expose a dataset to the network.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..utils.files import atomic_write_json
from .apply import DECISIONS_FORMAT, DECISIONS_VERSION, DecisionsError, load_decisions

logger = logging.getLogger(__name__)

DECISIONS_FILE = "decisions.json"
API = "/api/decisions"
MAX_BODY = 64 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Handler(SimpleHTTPRequestHandler):
    site: Path
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        logger.debug("%s " + format, self.address_string(), *args)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def _json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?")[0] == API:
            path = self.site / DECISIONS_FILE
            if path.is_file():
                self._json(200, json.loads(path.read_text(encoding="utf-8")))
            else:
                self._json(200, {"format": DECISIONS_FORMAT, "version": DECISIONS_VERSION, "episodes": {}})
            return
        rng = self.headers.get("Range")
        if rng:
            self._range(rng)
            return
        super().do_GET()

    def _range(self, header: str) -> None:
        path = Path(self.translate_path(self.path))
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
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                left -= len(chunk)

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?")[0] != API:
            self._json(404, {"error": f"POST only to {API}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._json(413, {"error": "empty or too large"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
            if not isinstance(payload, dict):
                raise DecisionsError("POST body is not a decisions object")
            data = load_decisions(payload)
        except (ValueError, DecisionsError) as exc:
            self._json(400, {"error": str(exc)})
            return
        path = self.site / DECISIONS_FILE
        with self.lock:
            atomic_write_json(path, data)
        self._json(200, {"saved": str(path), "episodes": len(data["episodes"])})


def make_server(site: str | Path, *, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A server for the built site at `site` (call `serve_forever()`; port 0 picks a free one)."""
    if host not in LOOPBACK:
        raise ValueError(f"the review server only binds to a loopback address {LOOPBACK}, not {host!r}")
    site = Path(site).resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site}: no index.html (build the site first)")
    handler = type("ReviewHandler", (_Handler,), {"site": site})
    server = ThreadingHTTPServer((host, port), partial(handler, directory=str(site)))
    server.daemon_threads = True
    return server


def serve(site: str | Path, *, host: str = "127.0.0.1", port: int = 8765) -> None:
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
