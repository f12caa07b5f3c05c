"""No route to the Hub (a closed port), or a Hub that accepts and never answers: one line naming what was fetched
and the fix, exit 2 — reads name the cache (HF_HUB_OFFLINE=1), writes say that re-running resumes.

Never the public Hub: HF_ENDPOINT points at 127.0.0.1 (a closed port, or a local socket that accepts and hangs).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lerobot_keyframes.cli.errors import one_line
from lerobot_keyframes.hub.errors import HubError, hub_errors, network_message

CLI = [sys.executable, "-m", "lerobot_keyframes.cli"]
MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """A server that accepts connections and never answers (a firewall that drops, a Hub that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def run(*args: str, endpoint: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(tmp_path / "hub-cache"),
            "HF_TOKEN": "hf_NotARealTokenForTheLocalTests0123", **env}
    full.pop("HF_HUB_OFFLINE", None)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, env=full)


def only_line(proc: subprocess.CompletedProcess[str], start: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_model_preflight_with_no_route_to_the_hub(sample_root: Path, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    proc = run("annotate", f"--root={sample_root}", f"--out={tmp_path / 'out'}", f"--vlm.model_id={MODEL}",
               endpoint=endpoint, tmp_path=tmp_path)
    line = only_line(proc, f"lerobot-keyframes annotate: error: --vlm.model_id={MODEL}: cannot reach the Hub at "
                           f"{endpoint} (ConnectError")
    for fix in ("HTTPS_PROXY", "HF_ENDPOINT", "HF_HUB_OFFLINE=1", "a local model directory as --vlm.model_id"):
        assert fix in line, (fix, line)
    assert "push" not in line and not (tmp_path / "out").exists()


def test_model_preflight_against_a_hub_that_never_answers(sample_root: Path, tmp_path: Path, silent_hub: str) -> None:
    proc = run("annotate", f"--root={sample_root}", f"--out={tmp_path / 'out'}", f"--vlm.model_id={MODEL}",
               endpoint=silent_hub, tmp_path=tmp_path, HF_HUB_ETAG_TIMEOUT="1")
    line = only_line(proc, f"lerobot-keyframes annotate: error: --vlm.model_id={MODEL}: the Hub at {silent_hub} did "
                           "not answer in time (ReadTimeout")
    assert "HF_HUB_ETAG_TIMEOUT" in line and "HF_HUB_OFFLINE=1" in line


def test_read_only_commands_name_the_cache_not_a_push(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    for command in ("info", "keyframes"):
        line = only_line(run(command, "lerobot/aloha_sim", endpoint=endpoint, tmp_path=tmp_path),
                         f"lerobot-keyframes {command}: error: reading the dataset's tags on dataset repo lerobot/aloha_sim "
                         f"failed: cannot reach the Hub at {endpoint}")
        assert "HF_HUB_OFFLINE=1" in line and "push" not in line, line


def test_reading_a_dataset_from_a_hub_that_never_answers_is_one_line_not_a_hang(tmp_path: Path,
                                                                                  silent_hub: str) -> None:
    line = only_line(run("info", "lerobot/aloha_sim", endpoint=silent_hub, tmp_path=tmp_path, HF_HUB_ETAG_TIMEOUT="1"),
                     "lerobot-keyframes info: error: reading the dataset's tags on dataset repo lerobot/aloha_sim "
                     f"failed: the Hub at {silent_hub} did not answer in time")
    assert "HF_HUB_ETAG_TIMEOUT" in line and "HF_HUB_OFFLINE=1" in line


def test_push_with_no_route_says_rerun_not_offline(sample_root: Path, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    line = only_line(run("push", str(sample_root), "--new_repo_id=tester/x", endpoint=endpoint, tmp_path=tmp_path),
                     f"lerobot-keyframes push: error: reading repo info on dataset repo tester/x failed: cannot reach "
                     f"the Hub at {endpoint}")
    assert "HF_HUB_OFFLINE" not in line and "re-run the same command" in line


def test_writes_and_reads_get_their_own_advice_for_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx (huggingface_hub's client) and requests (older huggingface_hub, datasets) errors, refused and timed
    out, translate the same way; an untranslated one still reads as one line in the CLI."""
    import httpx2
    import requests

    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", endpoint)
    with pytest.raises(HubError) as write:
        with hub_errors("committing", repo_id="tester/r", write=True):
            httpx2.get(f"{endpoint}/api/datasets/tester/r")
    assert "cannot reach the Hub at" in str(write.value) and "a push uploads only what is still missing" in str(write.value)
    assert "HF_HUB_OFFLINE" not in str(write.value) and write.value.__cause__ is None
    with pytest.raises(requests.exceptions.ConnectionError) as refused:
        requests.get(f"{endpoint}/api/models/x/y", timeout=5)
    assert network_message(refused.value).startswith(f"cannot reach the Hub at {endpoint} (ConnectionError")
    with pytest.raises(httpx2.ConnectError) as raw:
        httpx2.get(f"{endpoint}/api/models/x/y")
    text = one_line(raw.value)
    assert text.startswith(f"cannot reach the Hub at {endpoint} (ConnectError") and "HF_HUB_OFFLINE=1" in text


def test_timeouts_of_both_clients_say_so(silent_hub: str) -> None:
    import httpx2
    import requests

    with pytest.raises(httpx2.ReadTimeout) as slow:
        httpx2.get(f"{silent_hub}/api/models/x/y", timeout=0.5)
    assert f"{silent_hub} did not answer in time (ReadTimeout" in network_message(slow.value)
    with pytest.raises(requests.exceptions.ReadTimeout) as slow_requests:
        requests.get(f"{silent_hub}/api/models/x/y", timeout=0.5)
    assert f"{silent_hub} did not answer in time (ReadTimeout" in network_message(slow_requests.value)
