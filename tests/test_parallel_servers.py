"""`--vlm.parallel_servers` really started: N OpenAI-compatible server processes from `--vlm.serve_command`
(lerobot-annotate's meaning: `{port}` bound per server), requests round-robin over them, all stopped at the end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from lerobot_keyframes.vlm import make_backend
from lerobot_keyframes.vlm.config import VlmConfig
from lerobot_keyframes.vlm.errors import VlmServeError
from lerobot_keyframes.vlm.serve import VllmServer, bind_serve_port, served_models

SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}, "ok": {"type": "boolean"}},
          "required": ["id", "ok"]}
FAKE = f"{sys.executable} -m lerobot_keyframes.testing.fake_openai --forever"


def _consecutive_free_ports(n: int) -> int:
    """A first port p with p .. p+n-1 free on 127.0.0.1 (checked by binding them)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + n > 65535:
            continue
        socks = []
        try:
            for port in range(first, first + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip(f"no {n} consecutive free ports")


def _stats(api_base: str) -> dict:
    with urllib.request.urlopen(api_base + "/stats", timeout=5) as resp:
        return json.loads(resp.read())


def _conv(i: int) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": f"id={i}"}]}]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_command_binds_the_port_like_lerobot() -> None:
    assert bind_serve_port("vllm serve m --port {port} --x", 8001) == ["vllm", "serve", "m", "--port", "8001", "--x"]
    assert bind_serve_port("vllm serve 'my model'", 8002) == ["vllm", "serve", "my model", "--port", "8002"]
    assert bind_serve_port("srv --port=9 --y", 8003) == ["srv", "--port=9", "--y"]  # its own port is kept
    with pytest.raises(VlmServeError, match="not as --api-key"):  # argv is readable by every local user
        VllmServer(VlmConfig(backend="openai", auto_serve=True, serve_command="vllm serve m --api-key s3cret")).command()


def test_parallel_servers_start_from_the_serve_command_share_the_requests_and_stop() -> None:
    first = _consecutive_free_ports(3)
    bases = [f"http://127.0.0.1:{first + i}/v1" for i in range(3)]
    assert all(served_models(b) is None for b in bases)  # nothing to reuse: the servers are ours
    cfg = VlmConfig(backend="openai", model_id="pool-model", api_base=bases[0], auto_serve=True, parallel_servers=3,
                    serve_command=f"{FAKE} --model pool-model --port {{port}}", serve_timeout=120, max_retries=0)
    backend = make_backend(cfg)
    try:
        pool = backend._server
        processes = [server.process for server in pool.servers]
        assert all(p is not None and p.poll() is None for p in processes)
        assert [p.args[p.args.index("--port") + 1] for p in processes] == [str(first + i) for i in range(3)]
        assert backend.config.api_bases == bases
        assert [served_models(b) for b in bases] == [["pool-model"]] * 3
        results = backend.generate([_conv(i) for i in range(9)], [SCHEMA] * 9)
        assert all(r.ok for r in results) and sorted(r.parsed["id"] for r in results) == list(range(9))
        assert [_stats(b)["requests"] for b in bases] == [3, 3, 3]  # round-robin: each server got its share
    finally:
        backend.close()
    assert all(p.poll() is not None for p in processes)  # every server process has exited ...
    assert not any(_alive(p.pid) for p in processes)
    assert all(served_models(b, timeout=1.0) is None for b in bases)  # ... and no port answers any more


def test_annotate_with_parallel_servers_from_a_serve_command(sample_root: Path, tmp_path: Path) -> None:
    """The lerobot-annotate command line: auto_serve, two servers from --vlm.serve_command on --vlm.serve_port
    and the next port; the run succeeds and leaves no server behind."""
    first = _consecutive_free_ports(2)
    model = tmp_path / "model"  # the model id the servers serve (a directory, so the preflight accepts it)
    model.mkdir()
    (model / "config.json").write_text("{}")
    command = f"{FAKE} --plausible --model {model}"
    proc = subprocess.run(
        [sys.executable, "-m", "lerobot_keyframes.cli", "annotate", f"--root={sample_root}", f"--out={tmp_path / 'out'}",
         "--vlm.backend=openai", "--vlm.auto_serve=true", "--vlm.parallel_servers=2", f"--vlm.serve_port={first}",
         f"--vlm.serve_command={command}", f"--vlm.model_id={model}", "--vlm.serve_ready_timeout_s=120",
         "--vqa.enabled=false", "--interjections.enabled=false", "--quality.enabled=false",
         "--plan.min_subtask_seconds=0.3", "-v"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    started = [line for line in proc.stderr.splitlines() if "auto_serve: starting" in line]
    assert len(started) == 2 and all("lerobot_keyframes.testing.fake_openai" in line for line in started)
    assert [f"--port {first + i}" in line for i, line in enumerate(started)] == [True, True]
    assert sum("ready at" in line for line in proc.stderr.splitlines()) == 2
    assert all(served_models(f"http://127.0.0.1:{first + i}/v1", timeout=1.0) is None for i in range(2))
