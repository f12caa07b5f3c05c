"""`LocalHub`: the local Hub served on 127.0.0.1 (a `ThreadingHTTPServer` on a free port, started and stopped
with the context); what it knows and records is `state.HubState`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

from .handler import Handler
from .state import HubState


class LocalHub(HubState):
    """An in-memory Hub served on 127.0.0.1. Entering the context starts it and yields its endpoint URL."""

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        if self._server is None:
            hub = self

            class BoundHandler(Handler):
                pass

            BoundHandler.hub = hub
            self._server = ThreadingHTTPServer((self._host, self._port), BoundHandler)
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


def iter_repo_files(hub: LocalHub, repo_id: str, *, revision: str = "main", repo_type: str = "dataset") -> Iterator[str]:
    """Paths of the files at `revision`, sorted (a test convenience)."""
    repo = hub.repo(repo_id, repo_type)
    with hub._lock:
        commit = repo.resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_id}: no revision {revision}")
        yield from sorted(commit.files)
