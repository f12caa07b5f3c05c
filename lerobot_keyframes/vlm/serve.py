"""``auto_serve``: start a local vLLM OpenAI-compatible server for ``model_id`` and stop it on exit.

``--vlm.serve_command`` (lerobot-annotate's) replaces the started command: any OpenAI-compatible server
(``vllm serve MODEL ...``, ``transformers serve``, ...), its ``{port}`` replaced by the server's port, else
``--port N`` appended, exactly as lerobot-annotate binds it (per server with ``--vlm.parallel_servers``).

Never reuses a server that serves another model: if the port answers with a different model list, it is an
error. A server that already serves the requested model is reused (and left running).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .config import VlmConfig
from .errors import MissingExtraError, VlmServeError
from .vllm_cpu import KV_CACHE_ENV, GiB, capped_kv_cache_bytes, is_cpu_vllm_build, kv_cache_space_set

logger = logging.getLogger(__name__)


def served_models(api_base: str, api_key: str | None = None, timeout: float = 2.0) -> list[str] | None:
    """Model ids listed by ``GET {api_base}/models``, or None when nothing answers there."""
    req = urllib.request.Request(api_base.rstrip("/") + "/models")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = json.loads(resp.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return [str(m.get("id")) for m in body.get("data", []) if isinstance(m, dict)]


def vllm_server_command(cfg: VlmConfig, host: str, port: int) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        cfg.model_id,
        "--served-model-name",
        cfg.model_id,
        "--host",
        host,
        "--port",
        str(port),
        "--tensor-parallel-size",
        str(cfg.tensor_parallel_size),
        "--gpu-memory-utilization",
        str(cfg.gpu_memory_utilization),
        "--limit-mm-per-prompt",
        json.dumps(dict(cfg.limit_mm_per_prompt)),
        "--structured-outputs-config",
        json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
        "--uvicorn-log-level",
        "warning",
    ]
    if cfg.revision:
        cmd += ["--revision", cfg.revision]
    if cfg.dtype != "auto":
        cmd += ["--dtype", cfg.dtype]
    if cfg.max_model_len is not None:
        cmd += ["--max-model-len", str(cfg.max_model_len)]
    if cfg.max_num_seqs is not None:
        cmd += ["--max-num-seqs", str(cfg.max_num_seqs)]
    if cfg.seed is not None:
        cmd += ["--seed", str(cfg.seed)]
    if cfg.enforce_eager:
        cmd += ["--enforce-eager"]
    if cfg.trust_remote_code:
        cmd += ["--trust-remote-code"]
    # never `--api-key`: argv is readable by every local user (ps); the key goes by VLLM_API_KEY (server_env)
    if _knows_trust_request_mm_kwargs():
        cmd += ["--trust-request-mm-kwargs"]  # our own clients send when each video frame was taken
    _check_serve_args(cfg.serve_args)
    cmd += list(cfg.serve_args)
    return cmd


def bind_serve_port(command: str, port: int) -> list[str]:
    """lerobot-annotate's binding of a serve command to a port: `{port}` replaced, else `--port N` appended
    (a command that names its own `--port` is left alone)."""
    import shlex

    if "{port}" in command:
        return shlex.split(command.replace("{port}", str(port)))
    tokens = shlex.split(command)
    if not any(t == "--port" or t.startswith("--port=") for t in tokens):
        tokens += ["--port", str(port)]
    return tokens


def server_env(cfg: VlmConfig) -> dict[str, str]:
    """The server's environment: ours, with `--vlm.api_key` as VLLM_API_KEY (vLLM reads it when `--api-key`
    is absent). Never argv: any local user can read a process's command line."""
    env = dict(os.environ)
    if cfg.api_key:
        env["VLLM_API_KEY"] = cfg.api_key
    if not kv_cache_space_set(env) and is_cpu_vllm_build():  # vLLM on a CPU would take 90% of all memory
        env[KV_CACHE_ENV] = str(max(1, capped_kv_cache_bytes(cfg.gpu_memory_utilization, "auto_serve") // GiB))
    return env


def _check_serve_args(args: tuple[str, ...] | list[str]) -> None:
    for arg in args:
        if arg.split("=", 1)[0] in ("--api-key", "--api_key"):
            raise VlmServeError(
                "auto_serve: pass the server key as --vlm.api_key (sent to vLLM by environment), not as "
                "--api-key in --vlm.serve_args, where it would be visible in the process list and logs"
            )


def redacted_command(cmd: list[str], secret: str | None) -> str:
    """The command line for the log, with `secret` (if any slipped in) replaced by ***."""
    text = " ".join(cmd)
    return text.replace(secret, "***") if secret else text


def _knows_trust_request_mm_kwargs() -> bool:
    """Whether the installed vLLM has `--trust-request-mm-kwargs` (newer releases refuse per-request
    media_io_kwargs without it; older ones accept them and would reject the unknown flag)."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        return False
    root = Path(next(iter(spec.submodule_search_locations)))
    for rel in ("entrypoints/launchers/cli_args.py", "entrypoints/openai/cli_args.py"):
        path = root / rel
        if path.is_file() and "trust_request_mm_kwargs" in path.read_text(errors="replace"):
            return True
    return False


class VllmServer:
    """A vLLM server process we started (or a reused one we did not)."""

    def __init__(self, cfg: VlmConfig, env: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.api_base = cfg.api_bases[0]
        self.env = dict(env or {})  # set in the server's environment (CUDA_VISIBLE_DEVICES of a parallel server)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def command(self) -> list[str]:
        parsed = urlparse(self.api_base)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        if self.cfg.serve_command:
            cmd = bind_serve_port(self.cfg.serve_command, port)
            _check_serve_args(cmd)  # the key goes by environment (--vlm.api_key), never argv
            return cmd
        return vllm_server_command(self.cfg, parsed.hostname or "127.0.0.1", port)

    def start(self) -> VllmServer:
        if self.launch():
            try:
                self._wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def launch(self) -> bool:
        """Start the process without waiting for it; False when a server of `model_id` is reused."""
        cfg = self.cfg
        existing = served_models(self.api_base, cfg.api_key)
        if existing is not None:
            if cfg.model_id in existing:
                logger.info(
                    "auto_serve: reusing the server at %s, which serves %s", self.api_base, cfg.model_id
                )
                return False
            raise VlmServeError(
                f"auto_serve: {self.api_base} already serves {existing}, not {cfg.model_id!r}; "
                "stop that server or point --vlm.api_base at a free port"
            )
        if not cfg.serve_command and importlib.util.find_spec("vllm") is None:
            raise MissingExtraError("vllm", "vllm")
        fd, log_name = tempfile.mkstemp(prefix="lerobot-keyframes-vllm-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log_name)
        cmd = self.command()
        logger.info("auto_serve: starting %s%s (log: %s)", " ".join(f"{k}={v} " for k, v in self.env.items()),
                    redacted_command(cmd, cfg.api_key), self.log_path)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**server_env(cfg), **self.env},
            )
        atexit.register(self.stop)
        return True

    def _log_tail(self, n: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(lines)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.cfg.serve_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise VlmServeError(
                    f"auto_serve: the server for {self.cfg.model_id!r} exited with code {code} before it was "
                    f"ready (log {self.log_path}):\n{self._log_tail()}"
                )
            models = served_models(self.api_base, self.cfg.api_key, timeout=1.0)
            if models is not None:
                if self.cfg.model_id not in models:
                    raise VlmServeError(
                        f"auto_serve: the server at {self.api_base} serves {models}, not {self.cfg.model_id!r}"
                    )
                logger.info("auto_serve: %s ready at %s", self.cfg.model_id, self.api_base)
                return
            time.sleep(0.5)
        raise VlmServeError(
            f"auto_serve: the server for {self.cfg.model_id!r} was not ready within "
            f"{self.cfg.serve_timeout:.0f} s (--vlm.serve_timeout; log {self.log_path}):\n{self._log_tail()}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
            proc.wait(10)

    def __enter__(self) -> VllmServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class ServerPool:
    """lerobot-annotate's `--vlm.parallel_servers`: N independent servers of `model_id` on consecutive ports
    from `--vlm.api_base`'s (its `--vlm.serve_port`), started together; the client round-robins over
    `api_bases`. As in lerobot, server i gets GPU i % `--vlm.num_gpus` (0: one GPU each); a server of
    `tensor_parallel_size` GPUs gets that many consecutive ones. GPU numbers index $CUDA_VISIBLE_DEVICES
    when it is set."""

    def __init__(self, cfg: VlmConfig) -> None:
        if len(cfg.api_bases) != 1:
            raise VlmServeError(f"--vlm.parallel_servers={cfg.parallel_servers} with auto_serve starts the servers "
                                "on consecutive ports from one --vlm.api_base; got several")
        first = urlparse(cfg.api_bases[0])
        port = first.port or (443 if first.scheme == "https" else 80)
        tp = cfg.tensor_parallel_size
        pool = cfg.num_gpus if cfg.num_gpus > 0 else cfg.parallel_servers * tp
        visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        self.servers: list[VllmServer] = []
        for i in range(cfg.parallel_servers):
            base = first._replace(netloc=f"{first.hostname}:{port + i}").geturl()
            gpus = [(i * tp + j) % pool for j in range(tp)]
            devices = ",".join(visible[g % len(visible)] if visible else str(g) for g in gpus)
            self.servers.append(VllmServer(cfg.replace(api_base=base, parallel_servers=1),
                                           env={"CUDA_VISIBLE_DEVICES": devices}))

    @property
    def api_bases(self) -> list[str]:
        return [server.api_base for server in self.servers]

    @property
    def api_base(self) -> str:
        """All of them, comma-separated: the `--vlm.api_base` the openai backend round-robins over."""
        return ",".join(self.api_bases)

    def start(self) -> ServerPool:
        """Launch every server first (they load in parallel), then wait for each; one failing stops all."""
        try:
            launched = [server.launch() for server in self.servers]
            for server, started in zip(self.servers, launched):
                if started:
                    server._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> ServerPool:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
