"""Keyframes as `datasets` columns: `KeyframeTransform` (a `datasets.map` callable), its stored columns and
messages, frame-level grouping, and the keyframes job behind `lerobot-keyframes keyframes`.

- `keyframe_transform`: the transform (episode rows in, keyframe columns and `messages` out);
- `columns`: the per-camera column names and the typed block struct of `messages`;
- `messages`: prompt templates, and `materialize_messages` (stored blocks back to real Qwen-VL blocks);
- `rows`: batches as Python values, `group_by_episode` for frame-level datasets;
- `job`: `KeyframesConfig` / `extract_keyframes` (load, map, write atomically; `hub.run_keyframes` pushes).
"""

from __future__ import annotations

from .columns import BLOCK_FIELDS, block_feature, keyframe_column, messages_feature, timestamp_column
from .job import KeyframesConfig, extract_keyframes
from .keyframe_transform import KeyframeTransform
from .messages import DEFAULT_PROMPT, materialize_messages
from .rows import group_by_episode, to_python

__all__ = [
    "BLOCK_FIELDS",
    "DEFAULT_PROMPT",
    "KeyframeTransform",
    "KeyframesConfig",
    "block_feature",
    "extract_keyframes",
    "group_by_episode",
    "keyframe_column",
    "materialize_messages",
    "messages_feature",
    "timestamp_column",
    "to_python",
]
