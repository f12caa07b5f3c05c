"""`KeyframeTransform`: a `datasets.map` callable that adds exact keyframes and Qwen-VL messages.

Output columns (declared by `KeyframeTransform.features`), for each camera `<cam>` (the camera key
exactly as in the dataset, e.g. `observation.images.front`):

- `keyframes.<cam>`: `List(Image())`, the decoded keyframes (JPEG by default), in time order;
- `keyframe_timestamps.<cam>`: `List(Value("float32"))`, their episode times, bit-equal to the
  parquet `timestamp` values (so they can key lerobot language rows directly);
- `messages`: `List({"role": string, "content": List(<block>)})`, a Qwen-VL conversation whose visual
  blocks *reference* the keyframe columns instead of holding pixels. A block is one typed struct
  (`BLOCK_FIELDS`; unused fields null): `{"type": "text", "text"}`, or `{"type": "image"|"video",
  "kind": "frame"|"video"|"contact_sheet", "column": "keyframes.<cam>", "indices": [...], "timestamps":
  [...] (float32, exact), "pts", "camera", "file", "episode_index", ...}`. A typed struct rather than
  `datasets.Json` keeps the times exact (Json round-trips floats through ujson with 10 digits) and
  the schema identical in every shard. `materialize_messages(row)` returns real Qwen-VL blocks
  (`{"type": "image", "image": PIL, "source": {...}}`, video blocks with their temporal metadata,
  rendered contact sheets) for a VLM backend.

Per-camera columns (rather than one list-of-struct column) keep each camera viewable in the Hub viewer,
selectable by name and typed with plain `datasets` features; all cameras share the keyframe times.

The callable takes a batch (dict of lists) of episode rows from `load_episodes`, or of frame-level rows
grouped per episode (`group_by_episode`), and returns a dict of lists: the same function serves
`Dataset.map(batched=True, num_proc=k)`, Ray Data `map_batches` and plain Python. It pickles to its
configuration only (decoders are opened lazily in each worker), so its `datasets` fingerprint is
stable: mapping twice with the same configuration reuses the cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import shutil
import string
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .frames.policies import KeyframePolicy, parse_policy
from .utils.fork import torch_fork_guard

if TYPE_CHECKING:
    from datasets import Dataset, Features
    from PIL import Image

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PROMPT",
    "KeyframeTransform",
    "KeyframesConfig",
    "extract_keyframes",
    "group_by_episode",
    "keyframe_column",
    "materialize_messages",
    "timestamp_column",
]

DEFAULT_PROMPT = (
    "{keyframes}"
    "These are {num_keyframes} keyframes per camera ({cameras}) of one robot episode lasting {duration:.1f} s, "
    "each labelled with its camera and its time in seconds. The robot's task: \"{task}\".\n"
    "Describe step by step, with times, what the robot does."
)
DEFAULT_LABEL = "{camera} t={t:.2f}s"
VISUALS = ("images", "video", "contact_sheet", "none")
PROMPT_FIELDS = {"keyframes", "task", "episode_index", "length", "duration", "fps", "cameras", "num_keyframes",
                 "timestamps"}


def keyframe_column(camera: str) -> str:
    return f"keyframes.{camera}"


def timestamp_column(camera: str) -> str:
    return f"keyframe_timestamps.{camera}"


# One stored content block: a typed struct (the same schema in every shard, exact float32 times; a
# `datasets.Json` column would round floats through ujson). Unused fields are null.
BLOCK_FIELDS = {
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


def block_feature() -> dict[str, Any]:
    from datasets import List, Value

    return {k: List(Value(v[1])) if isinstance(v, tuple) else Value(v) for k, v in BLOCK_FIELDS.items()}


def messages_feature() -> Any:
    """`List({"role": string, "content": List(<block struct>)})`."""
    from datasets import List, Value

    return List({"role": Value("string"), "content": List(block_feature())})


def _check_template(name: str, template: str, allowed: set[str]) -> None:
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"{name}: malformed template {template!r}: {exc}") from exc
    unknown = {u.split(".")[0].split("[")[0] for u in used} - allowed
    if unknown:
        raise ValueError(f"{name}: unknown field(s) {sorted(unknown)} in {template!r}; allowed: {sorted(allowed)}")


@dataclass(frozen=True)
class KeyframeTransform:
    """Adds per-camera keyframe columns and a Qwen-VL `messages` column to episode rows.

    `policy`: a `KeyframePolicy` or a `parse_policy` string. `cameras`: the camera keys to decode
    (None: every camera; then call `for_dataset` or pass `cameras` before asking for `features`).
    `prompt`: a `str.format` template; `{keyframes}` marks where the visual blocks go (else they come
    first); other fields: task, episode_index, length, duration, fps, cameras, num_keyframes, timestamps.
    `visual`: "images" (one labelled image block per keyframe), "video" (one video block per camera),
    "contact_sheet" (timestamped grids) or "none". Stored images are JPEG (`image_format="png"` for
    lossless), optionally downscaled to `image_width`. `root` is needed for frame-level input (the
    dataset root whose videos to decode). `passthrough=True` returns the input columns too (Ray Data
    replaces a batch with the function's output).
    """

    policy: KeyframePolicy | str = "uniform:8"
    cameras: tuple[str, ...] | None = None
    prompt: str = DEFAULT_PROMPT
    system_prompt: str | None = None
    visual: str = "images"
    label: str = DEFAULT_LABEL
    image_format: str = "jpeg"
    jpeg_quality: int = 90
    image_width: int | None = None
    sheet_columns: int = 4
    sheet_tile_width: int = 256
    sheet_frames: int = 16
    root: str | None = None
    backend: str = "auto"
    provider_options: tuple[tuple[str, Any], ...] = ()
    passthrough: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "policy", parse_policy(self.policy))
        if self.cameras is not None:
            cams = (self.cameras,) if isinstance(self.cameras, str) else tuple(self.cameras)
            if not cams:
                raise ValueError("cameras: give at least one camera key (or None for all)")
            object.__setattr__(self, "cameras", cams)
        if self.root is not None:
            object.__setattr__(self, "root", str(Path(self.root).expanduser().resolve()))
        if isinstance(self.provider_options, Mapping):
            object.__setattr__(self, "provider_options", tuple(sorted(self.provider_options.items())))
        if self.visual not in VISUALS:
            raise ValueError(f"visual must be one of {VISUALS}, got {self.visual!r}")
        if self.image_format not in ("jpeg", "png"):
            raise ValueError(f"image_format must be 'jpeg' or 'png', got {self.image_format!r}")
        _check_template("prompt", self.prompt, PROMPT_FIELDS)
        if self.system_prompt is not None:
            _check_template("system_prompt", self.system_prompt, PROMPT_FIELDS - {"keyframes"})
        _check_template("label", self.label, {"camera", "t", "i"})

    # -- pickling / hashing: configuration only ------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def fingerprint(self) -> str:
        """Stable hash of the configuration and the package version (same config: same string)."""
        from . import __version__

        return hashlib.sha256(f"{__version__}|{self!r}".encode()).hexdigest()[:16]

    @classmethod
    def for_dataset(cls, dataset: Any, **options: Any) -> KeyframeTransform:
        """A transform whose `cameras` default to every camera found in an episode table."""
        if options.get("cameras") is None:
            keys: list[str] = []
            for row_keys in dataset["camera_keys"]:
                keys.extend(k for k in row_keys if k not in keys)
            if not keys:
                raise ValueError("the dataset has no cameras to take keyframes from")
            options["cameras"] = tuple(keys)
        return cls(**options)

    def map(self, dataset: Dataset, *, num_proc: int | None = None, batch_size: int = 1,
            cache_dir: str | Path | None = None, use_cache: bool = True, desc: str | None = None) -> Dataset:
        """`dataset.map(self, batched=True, ...)` with declared features and a cache file named by fingerprint.

        An in-memory table (what `load_episodes` returns) has no cache files, so a plain `map` would decode
        again; here the result goes to `<cache_dir>/keyframes-<fingerprint>.arrow` (default: the datasets
        cache) and the same transform on the same table loads it instead.
        """
        from datasets.fingerprint import Hasher

        fingerprint = Hasher.hash([dataset._fingerprint, self.fingerprint(), batch_size])
        kwargs: dict[str, Any] = dict(
            batched=True, batch_size=batch_size, writer_batch_size=max(1, batch_size) * 8,
            features=self.features(dataset.features), num_proc=num_proc if (num_proc or 1) > 1 else None,
            desc=desc or f"keyframes ({self.policy.spec()})", new_fingerprint=fingerprint,
        )
        if use_cache:
            if cache_dir is None:
                from datasets import config as hf_config

                cache_dir = Path(hf_config.HF_DATASETS_CACHE) / "lerobot_keyframes"
            Path(cache_dir).expanduser().mkdir(parents=True, exist_ok=True)
            kwargs["cache_file_name"] = str(Path(cache_dir).expanduser() / f"keyframes-{fingerprint}.arrow")
            kwargs["load_from_cache_file"] = True
        else:
            kwargs["load_from_cache_file"] = False
        return dataset.map(self, **kwargs)

    # -- schema ----------------------------------------------------------------------------------------
    def output_columns(self) -> list[str]:
        cams = self._cameras_or_raise()
        return [c for cam in cams for c in (keyframe_column(cam), timestamp_column(cam))] + ["messages"]

    def features(self, input_features: Mapping[str, Any] | None = None) -> Features:
        """The declared features of the output: the input's (when given) plus the new columns."""
        from datasets import Features, Image, List, Value

        new: dict[str, Any] = {}
        for cam in self._cameras_or_raise():
            new[keyframe_column(cam)] = List(Image())
            new[timestamp_column(cam)] = List(Value("float32"))
        new["messages"] = messages_feature()
        return Features({**dict(input_features or {}), **new})

    def _cameras_or_raise(self) -> tuple[str, ...]:
        if self.cameras is None:
            raise ValueError(
                "KeyframeTransform(cameras=None) cannot declare its columns; pass cameras=(...) or build it "
                "with KeyframeTransform.for_dataset(episodes)"
            )
        return self.cameras

    # -- the batch function ------------------------------------------------------------------------------
    def __call__(self, batch: Mapping[str, Any], rank: int | None = None) -> dict[str, Any]:
        """Dict of lists in, dict of lists out (a single row in, a single row out also works).

        `rank` is what `datasets.map(..., with_rank=True)` passes; every worker process opens its own decoders,
        so the rank changes nothing. Rows of a Hub dataset whose videos are not downloaded yet get them
        fetched here (only the files of the chosen cameras)."""
        batch = {k: _to_py(v) for k, v in batch.items()}
        key = "timestamps" if "timestamps" in batch else "timestamp"
        if key not in batch:
            raise ValueError(
                "expected episode rows (a 'timestamps' column, from load_episodes) or frame rows grouped "
                "per episode (a 'timestamp' list column, from group_by_episode)"
            )
        values = batch[key]
        single = len(values) > 0 and not isinstance(values[0], (list, tuple))
        rows = [batch] if single else [{k: v[i] for k, v in batch.items()} for i in range(len(values))]
        if key == "timestamps" and any(r.get("repo_id") for r in rows):
            from .dataset.source import fetch_episode_videos

            fetch_episode_videos(rows, self.cameras)
        results = [self.process_episode(row) for row in rows]
        columns = self.output_columns()
        if single:
            out = dict(batch) if self.passthrough else {}
            out.update(results[0])
            return out
        out = {k: list(v) for k, v in batch.items()} if self.passthrough else {}
        for c in columns:
            out[c] = [r[c] for r in results]
        return out

    def process_episode(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The new columns for one episode row (or one grouped frame-level row)."""
        episode = self._episode(row)
        cams = self.cameras or tuple(episode["camera_keys"])
        times = self.policy.timestamps(episode)
        time_list = [float(t) for t in times]
        provider = self._provider(episode)
        requests = [(episode, time_list, cam) for cam in cams]
        if hasattr(provider, "frames_at_many"):
            decoded = provider.frames_at_many(requests)
        else:
            decoded = [provider.frames_at(*r) for r in requests]
        out: dict[str, Any] = {}
        per_camera = []
        for cam, frames in zip(cams, decoded):
            images = frames.to_pil()
            missing = [time_list[i] for i, im in enumerate(images) if im is None]
            if missing:
                raise ValueError(
                    f"episode {episode['episode_index']}, camera {cam!r}, file {frames.file}: no frame at "
                    f"time(s) {missing}"
                )
            out[keyframe_column(cam)] = [self._encode(im) for im in images]
            out[timestamp_column(cam)] = time_list
            per_camera.append((cam, frames))
        if self.cameras is not None:
            for cam in self.cameras:
                out.setdefault(keyframe_column(cam), [])
                out.setdefault(timestamp_column(cam), [])
        out["messages"] = self._messages(episode, cams, time_list, per_camera)
        return out

    # -- pieces ---------------------------------------------------------------------------------------------
    def _encode(self, image: Image.Image) -> dict[str, Any]:
        from PIL import Image as PILImage

        if self.image_width and image.width != self.image_width:
            height = max(1, round(image.height * self.image_width / image.width))
            image = image.resize((self.image_width, height), PILImage.Resampling.BICUBIC)
        buf = io.BytesIO()
        if self.image_format == "jpeg":
            image.convert("RGB").save(buf, format="JPEG", quality=self.jpeg_quality)
        else:
            image.save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    def _messages(self, episode: Mapping[str, Any], cams: Sequence[str], times: list[float],
                  per_camera: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        fps = float(episode.get("fps") or 0.0)
        length = int(episode.get("length") or len(episode["timestamps"]))
        values = {
            "task": episode.get("task") or "",
            "episode_index": int(episode["episode_index"]),
            "length": length,
            "duration": length / fps if fps else 0.0,
            "fps": fps,
            "cameras": ", ".join(cams),
            "num_keyframes": len(times),
            "timestamps": ", ".join(f"{t:.2f}" for t in times),
        }
        before, marker, after = self.prompt.partition("{keyframes}")
        visual = self._visual_blocks(episode, times, per_camera)
        content: list[dict[str, Any]] = []
        if marker:
            if before.format(**values):
                content.append({"type": "text", "text": before.format(**values)})
            content.extend(visual)
            if after.format(**values):
                content.append({"type": "text", "text": after.format(**values)})
        else:
            content.extend(visual)
            content.append({"type": "text", "text": self.prompt.format(**values)})
        messages = []
        if self.system_prompt is not None:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.system_prompt.format(**values)}]})
        messages.append({"role": "user", "content": content})
        return messages

    def _visual_blocks(self, episode: Mapping[str, Any], times: list[float],
                       per_camera: list[tuple[str, Any]]) -> list[dict[str, Any]]:
        if self.visual == "none":
            return []
        blocks: list[dict[str, Any]] = []
        for cam, frames in per_camera:
            common = {"column": keyframe_column(cam), "camera": cam, "file": frames.file,
                      "episode_index": int(episode["episode_index"])}
            pts = [float(p) for p in frames.pts]
            if self.visual == "images":
                for i, t in enumerate(times):
                    if self.label:
                        blocks.append({"type": "text", "text": self.label.format(camera=cam, t=t, i=i + 1)})
                    blocks.append({"type": "image", "kind": "frame", **common, "indices": [i], "timestamps": [t],
                                   "pts": [pts[i]]})
            elif self.visual == "video":
                raw_fps = float(episode["fps"])
                total = int(episode.get("length") or len(episode["timestamps"]))
                blocks.append({
                    "type": "video", "kind": "video", **common, "indices": list(range(len(times))),
                    "timestamps": times, "pts": pts, "fps": len(times) / total * raw_fps if total else raw_fps,
                    "raw_fps": raw_fps, "frames_indices": [int(i) for i in frames.indices], "total_num_frames": total,
                })
            else:  # contact_sheet
                from .frames.blocks import _sheet_spans

                for first, stop in _sheet_spans(len(times), self.sheet_frames):
                    blocks.append({
                        "type": "image", "kind": "contact_sheet", **common, "indices": list(range(first, stop)),
                        "timestamps": times[first:stop], "pts": pts[first:stop], "sheet_columns": self.sheet_columns,
                        "tile_width": self.sheet_tile_width, "label": "{t:.2f} s",
                    })
        return blocks

    # -- episodes and providers (per worker, never pickled) -------------------------------------------
    def _runtime(self) -> dict[str, Any]:
        state = self.__dict__.get("_runtime_state")
        if state is None or state["pid"] != os.getpid():
            torch_fork_guard()
            state = {"pid": os.getpid(), "providers": {}, "episodes": {}}
            object.__setattr__(self, "_runtime_state", state)
        return state

    def _provider(self, episode: Mapping[str, Any]) -> Any:
        root = str(episode["root"])
        providers = self._runtime()["providers"]
        if root not in providers:
            from .frames.provider import make_frame_provider

            providers[root] = make_frame_provider(root, video_backend=self.backend, **dict(self.provider_options))
        return providers[root]

    def _episode(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """An episode row; grouped frame-level rows are completed from the dataset root's metadata."""
        if "timestamps" in row:
            return dict(row)
        if self.root is None:
            raise ValueError("frame-level rows need KeyframeTransform(root=<dataset root>) to find the videos")
        eps = row.get("episode_index")
        if not isinstance(eps, (list, tuple)) or not eps:
            raise ValueError("frame-level rows must be grouped per episode first: use group_by_episode(dataset)")
        index = int(eps[0])
        if any(int(e) != index for e in eps):
            raise ValueError(
                f"a grouped row mixes episodes {sorted(set(int(e) for e in eps))}; group with group_by_episode(dataset)"
            )
        cache = self._runtime()["episodes"]
        if not cache:
            from .dataset import DatasetLayout, build_episode_rows

            for r in build_episode_rows(DatasetLayout.open(self.root)):
                cache[int(r["episode_index"])] = r
        if index not in cache:
            raise ValueError(f"{self.root}: episode {index} of the frame rows is not in the dataset")
        episode = dict(cache[index])
        timestamps = np.asarray(row["timestamp"], dtype=np.float32)
        order = np.argsort(timestamps, kind="stable")
        episode["timestamps"] = timestamps[order]
        # the robot's signals travel with the rows: motion policies read them from here
        for key, value in row.items():
            if key not in ("timestamp", "episode_index") and isinstance(value, (list, tuple)) and len(value) == len(order):
                first = value[0]
                if isinstance(first, (int, float, list, tuple)) and not isinstance(first, bool):
                    episode[key] = [value[i] for i in order]
        if self.cameras is not None:
            episode["cameras"] = [c for c in episode["cameras"] if c["key"] in self.cameras]
            episode["camera_keys"] = [c["key"] for c in episode["cameras"]]
        return episode


def _to_py(value: Any) -> Any:
    """numpy / pandas / arrow containers (Ray batches) -> Python lists, recursively for object arrays."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return [_to_py(v) for v in value]
        return value.tolist()
    if hasattr(value, "to_pylist"):
        return value.to_pylist()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    if isinstance(value, list):
        return [_to_py(v) if isinstance(v, np.ndarray) else v for v in value]
    return value


# -- materialize ----------------------------------------------------------------------------------------
def _open_image(value: Any) -> Image.Image:
    from PIL import Image as PILImage

    if isinstance(value, PILImage.Image):
        return value
    if isinstance(value, Mapping):
        if value.get("bytes"):
            im = PILImage.open(io.BytesIO(value["bytes"]))
            im.load()
            return im
        if value.get("path"):
            return PILImage.open(value["path"])
    raise ValueError(f"cannot read an image from {type(value).__name__}")


def materialize_messages(row: Mapping[str, Any], messages: Any = None) -> list[dict[str, Any]]:
    """Qwen-VL messages with real PIL blocks, from a row's stored `messages` and keyframe columns.

    Frame references become `{"type": "image", "image": PIL, "source": {file, pts, camera, episode_index,
    timestamp}}`; video references `{"type": "video", "video": [PIL, ...], "fps", "sample_fps", "raw_fps",
    "timestamps", "frames_indices", "video_metadata", "source"}` (see `frames.blocks.video_block`);
    contact-sheet references are rendered with `frames.blocks.contact_sheets`. Keyframe columns may
    hold PIL images (as `datasets` decodes them) or `{"bytes", "path"}` dicts (raw batches).
    """
    from .frames.blocks import contact_sheets

    stored = row["messages"] if messages is None else messages
    cache: dict[tuple[str, int], Any] = {}

    def image(column: str, index: int) -> Any:
        key = (column, index)
        if key not in cache:
            try:
                cache[key] = _open_image(row[column][index])
            except (KeyError, IndexError) as exc:
                raise ValueError(f"message references {column}[{index}], which the row does not have") from exc
        return cache[key]

    out = []
    for message in stored:
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": message["role"], "content": content})
            continue
        blocks = []
        for block in content:
            kind, btype = block.get("kind"), block.get("type")
            if btype == "text" or kind is None:
                blocks.append({"type": "text", "text": block["text"]})
                continue
            frames = [image(block["column"], int(i)) for i in block["indices"]]
            times = [float(t) for t in block["timestamps"]]
            source = {"file": block.get("file"), "camera": block.get("camera"),
                      "episode_index": block.get("episode_index")}
            if kind == "frame":
                blocks.append({"type": "image", "image": frames[0],
                               "source": {**source, "pts": block["pts"][0], "timestamp": times[0]}})
            elif kind == "video":
                total, raw_fps = int(block["total_num_frames"]), float(block["raw_fps"])
                indices = [int(i) for i in block["frames_indices"]]
                w, h = frames[0].size
                blocks.append({
                    "type": "video", "video": frames, "fps": block["fps"], "sample_fps": block["fps"],
                    "raw_fps": raw_fps, "timestamps": times, "frames_indices": indices,
                    "video_metadata": {"total_num_frames": total, "fps": raw_fps, "width": w, "height": h,
                                       "duration": total / raw_fps, "video_backend": "lerobot_keyframes",
                                       "frames_indices": indices},
                    "source": {**source, "pts": list(block["pts"]), "timestamps": times},
                })
            elif kind == "contact_sheet":
                (sheet,) = contact_sheets(frames, times, columns=int(block.get("sheet_columns") or 4),
                                          tile_width=int(block.get("tile_width") or 256),
                                          frames_per_sheet=len(frames), label=block.get("label") or "{t:.2f} s")
                blocks.append({"type": "image", "image": sheet,
                               "source": {**source, "kind": "contact_sheet", "timestamps": times,
                                          "pts": list(block["pts"])}})
            else:
                raise ValueError(f"stored block of unknown kind {kind!r}")
        out.append({"role": message["role"], "content": blocks})
    return out


# -- frame-level datasets ---------------------------------------------------------------------------------
def group_by_episode(dataset: Dataset, column: str = "episode_index", *, use_batch: bool | None = None) -> Dataset:
    """One row per episode from a frame-level dataset: every column becomes the list of its frames' values.

    Uses `Dataset.batch(by_column=...)` when this `datasets` version has it (>= 4.x), else an Arrow
    fallback (which holds the whole table in memory). Frames are sorted by (`column`, `index`/`frame_index`) first when an episode's rows are not
    contiguous.
    """
    import inspect

    from datasets import Dataset as HFDataset

    if column not in dataset.column_names:
        raise ValueError(f"the dataset has no {column!r} column to group by (columns: {dataset.column_names})")
    values = np.asarray(dataset.with_format("numpy")[column])
    if len(values) and (np.diff(values) != 0).sum() + 1 != len(np.unique(values)):
        order = [c for c in (column, "index", "frame_index") if c in dataset.column_names]
        dataset = dataset.sort(order)
    if use_batch is None:
        use_batch = "by_column" in inspect.signature(HFDataset.batch).parameters
    if use_batch:
        return dataset.batch(batch_size=1000, by_column=column)  # 1000: rows read per step, not group size
    return _group_arrow(dataset, column)


def _group_arrow(dataset: Dataset, column: str) -> Dataset:
    import pyarrow as pa
    from datasets import Dataset as HFDataset
    from datasets import DatasetInfo, Features, List
    from datasets.table import InMemoryTable

    table = dataset.with_format("arrow")[:]
    values = table[column].to_numpy()
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.zeros(0, np.int64)
    offsets = pa.array(np.r_[starts, len(values)].astype(np.int32), pa.int32())
    arrays = [pa.ListArray.from_arrays(offsets, table[name].combine_chunks()) for name in table.column_names]
    grouped = pa.Table.from_arrays(arrays, names=table.column_names)
    features = Features({name: List(feature) for name, feature in dataset.features.items()})
    return HFDataset(InMemoryTable(grouped.cast(features.arrow_schema)), info=DatasetInfo(features=features))


# -- the keyframes job (library side of `lerobot-keyframes keyframes`) -----------------------------------
@dataclass(frozen=True)
class KeyframesConfig:
    """Everything `lerobot-keyframes keyframes` does, as data."""

    source: str  # dataset root or Hub repo id (the SOURCE argument)
    out: str | None = None  # output directory; unset: nothing written (cached, or pushed with --push_to_hub)
    policy: str = "uniform:8"  # keyframe policy, e.g. uniform:8, fps:1, at:0,2.5, every_frame, motion+uniform:4@12
    cameras: tuple[str, ...] | None = None  # comma-separated camera keys; None or all: every camera
    episodes: tuple[int, ...] | None = None  # comma-separated episode indices; unset: all
    revision: str | None = None  # Hub revision of the source (branch, tag, commit); default: the v3.0 tag, else main
    num_proc: int | None = None  # datasets.map worker processes; unset: this process only
    batch_size: int = 1  # episodes per datasets.map batch
    format: str = "parquet"  # parquet | arrow
    visual: str = "images"  # visual blocks of the messages: images|video|contact_sheet|none
    prompt: str = DEFAULT_PROMPT  # str.format template; {keyframes} places the visual blocks; {task}, {fps}, etc
    image_width: int | None = None  # downscale stored keyframes to this width (px); unset: full size
    jpeg_quality: int = 90  # JPEG quality of the stored keyframes (1-95)
    backend: str = "auto"  # video decoder: auto|torchcodec|pyav|ffmpeg (auto falls back in that order, per file)
    push_to_hub: str | None = None  # Hub dataset repo id to push the table to; unset: no push
    private: bool = True  # push as a private dataset
    cache_dir: str | None = None  # where the datasets cache file goes; default: the datasets cache
    use_cache: bool = True  # reuse the cached result of the same settings; false: decode again
    overwrite: bool = False  # replace a non-empty --out
    max_shard_mb: int = 500  # target size of one parquet shard in MB

    def __post_init__(self) -> None:
        if self.format not in ("parquet", "arrow"):
            raise ValueError(f"format must be 'parquet' or 'arrow', got {self.format!r}")
        parse_policy(self.policy)
        if self.num_proc is not None and self.num_proc < 1:
            raise ValueError(f"num_proc must be >= 1, got {self.num_proc}")


def extract_keyframes(config: KeyframesConfig) -> Dataset:
    """Load the episode table, map `KeyframeTransform` over it (cached by fingerprint), write / push it.

    With `out`, the result is written atomically: `format="parquet"` as `out/data/train-*.parquet`
    shards (the Hub layout, features in the schema metadata), `format="arrow"` with `save_to_disk`;
    `out/keyframes_config.json` records the configuration. `push_to_hub` pushes with `datasets`
    (private unless `private=False`).
    """
    from .dataset import load_episodes
    from .dataset.layout import check_output_separate
    from .dataset.source import is_local

    out = Path(config.out).expanduser().absolute() if config.out else None
    if out is not None and is_local(config.source):  # before anything is read, decoded or replaced
        check_output_separate(config.source, out)
    if config.push_to_hub and config.push_to_hub == config.source:
        raise ValueError(f"--push_to_hub {config.push_to_hub} is the source dataset; push the keyframes table to "
                         "a new repo (it would replace the source's files)")
    if out is not None and out.exists() and any(out.iterdir()) and not config.overwrite:
        raise FileExistsError(f"{out} already exists and is not empty; pass overwrite=True (CLI: --overwrite)")
    episodes = load_episodes(config.source, revision=config.revision, episodes=config.episodes,
                             cameras=config.cameras, download_videos=True)
    if out is not None and len(episodes):  # a Hub source: its snapshot folder is known only now
        check_output_separate(episodes[0]["root"], out)
    transform = KeyframeTransform.for_dataset(
        episodes, policy=config.policy, cameras=config.cameras, visual=config.visual, prompt=config.prompt,
        image_width=config.image_width, jpeg_quality=config.jpeg_quality, backend=config.backend,
    )
    result = transform.map(episodes, num_proc=config.num_proc, batch_size=config.batch_size,
                           cache_dir=config.cache_dir, use_cache=config.use_cache)
    if out is not None:
        _write(result, out, config, transform)
    if config.push_to_hub:
        logger.info("pushing %d episodes to %s (private=%s)", len(result), config.push_to_hub, config.private)
        local = [c for c in ("root",) if c in result.column_names]  # machine-local paths stay here
        result.remove_columns(local).push_to_hub(config.push_to_hub, private=config.private)
    return result


def _write(result: Dataset, out: Path, config: KeyframesConfig, transform: KeyframeTransform) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if config.format == "arrow":
            result.save_to_disk(str(tmp / "dataset"))
            payload = tmp / "dataset"
        else:
            payload = tmp / "dataset"
            (payload / "data").mkdir(parents=True)
            nbytes = result.data.nbytes
            shards = max(1, math.ceil(nbytes / (config.max_shard_mb * 1024 * 1024)))
            shards = min(shards, max(1, len(result)))
            for i in range(shards):
                part = result.shard(shards, i, contiguous=True)
                part.to_parquet(str(payload / "data" / f"train-{i:05d}-of-{shards:05d}.parquet"))
        record = {"config": asdict(config), "policy": transform.policy.spec(), "cameras": list(transform.cameras or ()),
                  "columns": transform.output_columns(), "episodes": len(result),
                  "fingerprint": transform.fingerprint()}
        (payload / "keyframes_config.json").write_text(json.dumps(record, indent=2, default=str))
        if out.exists():
            shutil.rmtree(out)
        os.replace(payload, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

