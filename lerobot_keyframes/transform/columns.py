"""The transform's stored columns: per-camera keyframe columns and the typed `messages` block struct.

One stored content block is a typed struct (the same schema in every shard, exact float32 times; a
`datasets.Json` column would round floats through ujson with 10 digits). Unused fields are null.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import List, Value


def keyframe_column(camera: str) -> str:
    return f"keyframes.{camera}"


def timestamp_column(camera: str) -> str:
    return f"keyframe_timestamps.{camera}"


BLOCK_FIELDS: dict[str, str | tuple[str, str]] = {
    "type": "string",  # text | image | video
    "text": "string",
    "kind": "string",  # frame | video | contact_sheet
    "column": "string",  # the keyframe column the block's frames come from
    "indices": ("list", "int32"),  # positions in that column
    "camera": "string",
    "file": "string",
    "episode_index": "int64",
    "timestamps": ("list", "float32"),  # exact parquet times of the frames
    "pts": ("list", "float64"),  # presentation times in the file
    "fps": "float64",  # video: frames per second of the sampled sequence (VideoMetadata.sampled_fps)
    "raw_fps": "float64",
    "frames_indices": ("list", "int64"),  # video: frame indices within the episode
    "total_num_frames": "int64",
    "sheet_columns": "int32",
    "tile_width": "int32",
    "label": "string",
}


def block_feature() -> dict[str, Value | List]:
    from datasets import List, Value

    return {k: List(Value(v[1])) if isinstance(v, tuple) else Value(v) for k, v in BLOCK_FIELDS.items()}


def messages_feature() -> List:
    """`List({"role": string, "content": List(<block struct>)})`."""
    from datasets import List, Value

    return List({"role": Value("string"), "content": List(block_feature())})
