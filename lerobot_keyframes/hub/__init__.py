"""Hugging Face Hub: push datasets with their card, run annotation on HF Jobs, merge sharded runs.

Names are imported lazily so `import lerobot_keyframes.hub` stays cheap (huggingface_hub loads on use).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HubError": "errors",
    "hub_errors": "errors",
    "redact": "errors",
    "PushResult": "push",
    "push_dataset": "push",
    "build_card": "card",
    "JobConfig": "jobs",
    "JobHandle": "jobs",
    "ShardedRun": "jobs",
    "plan_shards": "jobs",
    "submit_annotation_job": "jobs",
    "submit_sharded_annotation": "jobs",
    "resubmit_failed_shards": "jobs",
    "MergeError": "merge",
    "ShardSource": "merge",
    "collect_shards": "merge",
    "merge_shards": "merge",
    "push_shard_staging": "merge",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lerobot_keyframes.hub' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
