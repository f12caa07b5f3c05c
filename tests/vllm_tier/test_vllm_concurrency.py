"""`make_backend(vllm)` shared by many coroutines and threads on the real vLLM CPU engine, and its KV cache on a CPU.

Two threads inside one `vllm.LLM` abort the process (`corrupted double-linked list`, SIGABRT), so the callers
run in a child process (concurrent_callers.py): a crash there is this test's failure, not pytest's death.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import VlmConfig, make_backend
from lerobot_keyframes.vlm.serve import server_env
from lerobot_keyframes.vlm.vllm_cpu import CPU_KV_CACHE_MAX, KV_CACHE_ENV, GiB, cpu_kv_cache_bytes

pytestmark = pytest.mark.vllm
HERE = Path(__file__).parent


def test_agenerate_from_many_coroutines_and_threads_on_one_engine(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    root = HERE.parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(root), os.environ.get("PYTHONPATH", "")])}
    try:
        proc = subprocess.run([sys.executable, str(HERE / "concurrent_callers.py"), str(out)], env=env,
                              capture_output=True, text=True, timeout=400)
    except subprocess.TimeoutExpired as exc:  # the engine spinning with two threads inside
        pytest.fail(f"the callers did not finish in {exc.timeout} s:\n{(exc.stderr or b'')[-3000:]!r}")
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-3000:]}"
    report = json.loads(out.read_text())
    alone = report["alone"]
    assert all(ok for ok, _ in alone) and len({tokens for _, tokens in alone}) == 8
    # every caller got the answer to its own conversation, each round
    assert report["from_coroutines"] == [[alone[k % 8]] * 2 for k in range(16)]
    assert report["from_threads"] == alone
    assert report["overlaps"] == 0 and report["engine_threads"] == 1, report
    sizes = report["coroutine_call_sizes"]
    assert sum(sizes) == 32 and max(sizes) == 8 and sizes[0] == 8, sizes  # shared batches, up to max_num_seqs
    assert sum(report["thread_call_sizes"]) == 8, report["thread_call_sizes"]


def test_on_a_cpu_the_kv_cache_is_capped_unless_chosen(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """vLLM 0.32 on a CPU without VLLM_CPU_KVCACHE_SPACE takes gpu_memory_utilization (0.9) of all memory for
    its KV cache (~20 of 23.5 GiB here) and the machine runs out: the in-process engine and the servers
    auto_serve starts get a cap instead, said in an INFO line; the user's value stays theirs."""
    import psutil

    backend = make_backend(VlmConfig(backend="vllm", model_id=str(tiny_qwen_cached("qwen2_5_vl", head_dim=64))))
    serving = VlmConfig(backend="openai", auto_serve=True)
    monkeypatch.delenv(KV_CACHE_ENV, raising=False)
    with caplog.at_level(logging.INFO, logger="lerobot_keyframes.vlm.vllm_cpu"):
        kwargs = backend.engine_kwargs()
        env = server_env(serving)
    cap = kwargs["kv_cache_memory_bytes"]
    assert 0 < cap <= min(CPU_KV_CACHE_MAX, psutil.virtual_memory().total // 4)
    assert 1 <= int(env[KV_CACHE_ENV]) <= CPU_KV_CACHE_MAX // GiB
    assert caplog.text.count("KV cache capped") == 2 and "set VLLM_CPU_KVCACHE_SPACE=<GiB> to choose" in caplog.text
    monkeypatch.setenv(KV_CACHE_ENV, "1")  # the user's choice (what vLLM reads) stays theirs
    assert "kv_cache_memory_bytes" not in backend.engine_kwargs() and server_env(serving)[KV_CACHE_ENV] == "1"
    monkeypatch.setenv(KV_CACHE_ENV, "")  # vLLM reads an empty value as unset
    assert "kv_cache_memory_bytes" in backend.engine_kwargs() and server_env(serving)[KV_CACHE_ENV] != ""
    assert cpu_kv_cache_bytes(64 * GiB) == CPU_KV_CACHE_MAX and cpu_kv_cache_bytes(8 * GiB) == 2 * GiB
