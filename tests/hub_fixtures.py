"""Pytest fixtures that run the local Hub (`lerobot_keyframes.testing.local_hub`) for one test.

Use them with `from hub_fixtures import local_hub, hub_env` in a test module (or `pytest_plugins =
["hub_fixtures"]`). `local_hub` starts a fresh in-memory Hub and points `huggingface_hub` and `datasets` at it
in-process: environment variables for subprocesses, and the module constants both libraries read at import
time (`huggingface_hub.constants.ENDPOINT`, `datasets.config.HF_ENDPOINT`, offline flags, cache folders).
Caches live under the test's tmp_path, so nothing from the user's real Hugging Face cache leaks in or out.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lerobot_keyframes.testing.local_hub import LocalHub


def patch_hub_endpoint(monkeypatch: pytest.MonkeyPatch, url: str, token: str | None, cache: Path) -> dict[str, str]:
    """Point huggingface_hub and datasets at `url` for this test; returns the env a subprocess needs."""
    import datasets.config
    import huggingface_hub.constants as hf_constants

    env = {
        "HF_ENDPOINT": url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HOME": str(cache / "home"),
        "HF_HUB_CACHE": str(cache / "hub"),
        "HF_DATASETS_CACHE": str(cache / "datasets"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
        env["HF_TOKEN"] = token

    monkeypatch.setattr(hf_constants, "ENDPOINT", url)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "DATASETS_SERVER_ENDPOINT", url + "/_datasets-server")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(hf_constants, "HF_HOME", env["HF_HOME"])
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(cache / "home" / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(cache / "home" / "stored_tokens"))
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", url)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", Path(env["HF_DATASETS_CACHE"]))
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", Path(env["HF_DATASETS_CACHE"]) / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", Path(env["HF_DATASETS_CACHE"]) / "downloads" / "extracted")
    return env


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def forbid_remote_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any name lookup other than loopback fail loudly: a test must never reach the public Hub."""
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            raise OSError(f"test tried to reach {name!r}; only the local Hub on 127.0.0.1 is allowed")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@pytest.fixture
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub's http_backoff sleeps 1, 2, 4, 8 s between retries; make those sleeps instant (only there)."""
    import time
    import types

    import huggingface_hub.utils._http as http

    fake = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    fake.sleep = lambda seconds: None
    monkeypatch.setattr(http, "time", fake)


@pytest.fixture
def local_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LocalHub]:
    """A running local Hub; HF_TOKEN is `LocalHub.TOKEN` (user `tester`, write access)."""
    forbid_remote_hosts(monkeypatch)
    hub = LocalHub()
    with hub as url:
        hub.env = patch_hub_endpoint(monkeypatch, url, LocalHub.TOKEN, tmp_path / "hf-cache")  # type: ignore[attr-defined]
        yield hub


@pytest.fixture
def hub_env(local_hub: LocalHub) -> dict[str, str]:
    """Environment variables for a subprocess that must talk to `local_hub` (merge into os.environ)."""
    return dict(local_hub.env)  # type: ignore[attr-defined]


@pytest.fixture
def hub(local_hub: LocalHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    """The local Hub for byte-range reads: this test's own range cache and a fresh per-process remote state."""
    from lerobot_keyframes.dataset.remote import video as remote

    monkeypatch.setenv("LEROBOT_KEYFRAMES_CACHE", str(tmp_path / "lk-cache"))
    remote.clear()
    yield local_hub
    remote.clear()


def video_requests(hub: LocalHub) -> list:
    """The video range requests the local Hub answered (its `resolve` route, .mp4 files)."""
    return [r for r in hub.requests if r.route == "resolve" and r.path.endswith(".mp4")]
