"""Hugging Face Hub: push datasets with their card, run annotation on HF Jobs, merge sharded runs.

Names are imported lazily so `import lerobot_keyframes.hub` stays cheap (huggingface_hub loads on use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {
    "HubError": ".errors",
    "hub_errors": ".errors",
    "redact": ".errors",
    "PushOptions": ".push",
    "PushResult": ".push",
    "push_dataset": ".push",
    "build_card": ".card",
    "JobConfig": ".jobs",
    "JobHandle": ".jobs",
    "ShardedRun": ".jobs",
    "plan_shards": ".jobs",
    "submit_annotation_job": ".jobs",
    "submit_sharded_annotation": ".jobs",
    "resubmit_failed_shards": ".jobs",
    "MergeError": ".merge",
    "ShardSource": ".merge",
    "collect_shards": ".merge",
    "merge_shards": ".merge",
    "push_shard_staging": ".merge",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .card import build_card  # noqa: F401
    from .errors import HubError, hub_errors, redact  # noqa: F401
    from .jobs import (  # noqa: F401
        JobConfig,
        JobHandle,
        ShardedRun,
        plan_shards,
        resubmit_failed_shards,
        submit_annotation_job,
        submit_sharded_annotation,
    )
    from .merge import MergeError, ShardSource, collect_shards, merge_shards, push_shard_staging  # noqa: F401
    from .push import PushOptions, PushResult, push_dataset  # noqa: F401
