"""Hugging Face Hub: push datasets with their card, keyframe tables, HF Jobs' generic calls, shard-branch merging.

Running `annotate` on HF Jobs (the job spec, shards, the run record) is an executor of annotate:
`lerobot_keyframes.annotate.executors.jobs`.

Names are imported lazily so `import lerobot_keyframes.hub` stays cheap (huggingface_hub loads on use).
"""

# ruff: noqa: F401 - the TYPE_CHECKING imports are re-exports for IDEs and type checkers
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports

_EXPORTS = {  # module -> the public names it defines
    ".errors": "HubError hub_errors redact",
    ".push": "PushOptions PushResult push_dataset",
    ".card": "build_card",
    ".jobs": "TERMINAL_STAGES Flavor JobStage known_flavors parse_timeout",
    ".merge": "MergeError ShardSource collect_shards merge_shards push_shard_staging",
    ".tables": "publishable_table push_keyframes_table run_keyframes",
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())

if TYPE_CHECKING:  # what IDEs and type checkers see
    from .card import build_card
    from .errors import HubError, hub_errors, redact
    from .jobs import TERMINAL_STAGES, Flavor, JobStage, known_flavors, parse_timeout
    from .merge import MergeError, ShardSource, collect_shards, merge_shards, push_shard_staging
    from .push import PushOptions, PushResult, push_dataset
    from .tables import publishable_table, push_keyframes_table, run_keyframes
