"""`--vlm.api_key` with `--vlm.auto_serve`: the key reaches the server by environment, never argv or the log.

vLLM cannot run here, so a stand-in `vllm` package (put first on PYTHONPATH) provides
`vllm.entrypoints.openai.api_server`: a real HTTP server process that, like vLLM, takes the key from
`--api-key` or else `VLLM_API_KEY` and answers `/v1/models` only with it. The process is started by
`VllmServer.start()` itself, so the assertions are on the real argv (/proc/<pid>/cmdline), the real
environment and the captured log.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from pathlib import Path

import pytest
from adversarial_helpers import one_error_line

from lerobot_keyframes.vlm.config import VlmConfig
from lerobot_keyframes.vlm.errors import VlmServeError
from lerobot_keyframes.vlm.serve import VllmServer, vllm_server_command

KEY = "sk-local-0f9e8d7c6b5a-never-in-logs"

FAKE_SERVER = r'''
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

argv = sys.argv[1:]
opt = lambda name: argv[argv.index(name) + 1] if name in argv else None
key = opt("--api-key") or os.environ.get("VLLM_API_KEY")
with open(os.environ["FAKE_VLLM_RECORD"], "w") as f:
    json.dump({"argv": sys.argv, "pid": os.getpid(), "env_key": os.environ.get("VLLM_API_KEY")}, f)


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if key and self.headers.get("Authorization") != f"Bearer {key}":
            self.send_response(401); self.end_headers(); return
        body = json.dumps({"data": [{"id": opt("--served-model-name")}]}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)


HTTPServer((opt("--host"), int(opt("--port"))), H).serve_forever()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "fakevllm" / "vllm"
    (pkg / "entrypoints" / "openai").mkdir(parents=True)
    for init in (pkg, pkg / "entrypoints", pkg / "entrypoints" / "openai"):
        (init / "__init__.py").write_text("")
    (pkg / "entrypoints" / "openai" / "api_server.py").write_text(FAKE_SERVER)
    monkeypatch.syspath_prepend(str(pkg.parent))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pkg.parent), os.environ.get("PYTHONPATH", "")]))
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(record))
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    return record


def test_auto_serve_passes_the_key_by_environment_and_never_logs_it(fake_vllm: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    cfg = VlmConfig(backend="openai", model_id="tiny/model", api_key=KEY, auto_serve=True, serve_timeout=60,
                    api_base=f"http://127.0.0.1:{_free_port()}/v1")
    with caplog.at_level(logging.DEBUG, logger="lerobot_keyframes"):
        server = VllmServer(cfg).start()
        try:
            record = json.loads(fake_vllm.read_text())
            cmdline = Path(f"/proc/{record['pid']}/cmdline").read_bytes().decode(errors="replace")
            served_log = server._log_tail()
        finally:
            server.stop()
    assert record["env_key"] == KEY  # the server got the key (and answered /models only with it: start() returned)
    assert KEY not in " ".join(record["argv"]) and KEY not in cmdline and "--api-key" not in cmdline
    assert "auto_serve: starting" in caplog.text and sys.executable in caplog.text
    assert KEY not in caplog.text and KEY not in served_log
    assert KEY not in repr(cfg)


def test_a_key_smuggled_into_serve_args_is_refused() -> None:
    cfg = VlmConfig(backend="openai", api_key=None, auto_serve=True, serve_args=(f"--api-key={KEY}",))
    with pytest.raises(VlmServeError) as info:
        vllm_server_command(cfg, "127.0.0.1", 8000)
    assert KEY not in str(info.value) and "--vlm.api_key" in str(info.value)


def test_a_server_that_quotes_the_key_in_its_refusal_never_gets_it_into_errors_logs_or_files(
        tiny: Path, tmp_path: Path, cli) -> None:
    """Some gateways answer 401 with the key they refused in the message ("Incorrect API key provided: sk-...")."""
    from adversarial_helpers import assert_no_secret

    from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer

    def refuse(request, attempt):
        return 401, {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}

    out = tmp_path / "out"
    with FakeOpenAIServer(responder=refuse) as server:
        rc, stdout, err = cli("annotate", "--root", tiny, "--out", out, "--vlm.backend=openai",
                              f"--vlm.api_base={server.api_base}", "--vlm.model_id=fake-model", f"--vlm.api_key={KEY}",
                              "--vlm.max_retries=0", "--interjections.enabled=false", "--vqa.enabled=false")
    assert rc == 1, err[-2000:]
    assert "HTTP 401" in err and "Incorrect API key provided: <api_key>" in err  # the refusal, still readable
    assert_no_secret(KEY, texts=[stdout, err], roots=[tmp_path])  # nor in the staged errors beside --out


@pytest.mark.parametrize("base", [f"http://user:{KEY}@127.0.0.1:9/v1", f"http://127.0.0.1:9/v1,https://{KEY}@example.org/v1"])
def test_a_key_written_into_the_api_base_url_is_refused_without_printing_it(tiny: Path, tmp_path: Path, cli,
                                                                            base: str) -> None:
    out = tmp_path / "out"
    rc, stdout, err = cli("annotate", f"--root={tiny}", f"--out={out}", "--vlm.backend=openai",
                          f"--vlm.api_base={base}")
    assert rc == 2
    line = one_error_line(err)
    assert "--vlm.api_base" in line and "credentials" in line and "--vlm.api_key" in line
    assert KEY not in err + stdout and not out.exists()
