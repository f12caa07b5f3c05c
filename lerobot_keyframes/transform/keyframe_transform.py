"""`KeyframeTransform`: a `datasets.map` callable that adds exact keyframes and Qwen-VL messages.

Output columns (declared by `KeyframeTransform.features`), for each camera `<cam>` (the camera key
exactly as in the dataset, e.g. `observation.images.front`):

- `keyframes.<cam>`: `List(Image())`, the decoded keyframes (JPEG by default), in time order;
- `keyframe_timestamps.<cam>`: `List(Value("float32"))`, their episode times, bit-equal to the
  parquet `timestamp` values (so they can key lerobot language rows directly);
- `messages`: `List({"role": string, "content": List(<block>)})`, a Qwen-VL conversation whose visual
  blocks *reference* the keyframe columns instead of holding pixels. A block is one typed struct
  (`columns.BLOCK_FIELDS`; unused fields null): `{"type": "text", "text"}`, or `{"type": "image"|"video",
  "kind": "frame"|"video"|"contact_sheet", "column": "keyframes.<cam>", "indices": [...], "timestamps":
  [...] (float32, exact), "pts", "camera", "file" (relative to the row's `root`: a table holds no path of this
  machine), "episode_index", ...}`. A typed struct rather than
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..dataset.records import Episode
from ..dataset.remote import DEFAULT_VIDEO_ACCESS, VideoAccess, check_video_access
from ..frames.config import VIDEO_BACKENDS, ProviderConfig, VideoBackend
from ..frames.policies import KeyframePolicy, parse_policy
from ..utils.fork import torch_fork_guard
from ..utils.state import PicklesAsConfig
from .columns import keyframe_column, messages_feature, timestamp_column
from .messages import (
    DEFAULT_LABEL,
    DEFAULT_PROMPT,
    PROMPT_FIELDS,
    VISUALS,
    Visual,
    check_template,
    root_relative,
)
from .rows import grouped_episode, to_python

if TYPE_CHECKING:
    from datasets import Dataset, Features, IterableDataset
    from PIL import Image

    from ..frames.provider import NullProvider, VideoFrameProvider
    from ..frames.types import Frames

ImageFormat = Literal["jpeg", "png"]
# the provider options a transform may set (the video backend has its own field; cameras come per call)
PROVIDER_OPTIONS = frozenset(ProviderConfig.__dataclass_fields__) - {"video_backend", "camera_key", "video_access"}


@dataclass
class _Runtime:
    """One worker process's providers (per dataset root) and episode records (for frame-level rows)."""

    providers: dict[str, VideoFrameProvider | NullProvider] = field(default_factory=dict)
    episodes: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyframeTransform(PicklesAsConfig):
    """Adds per-camera keyframe columns and a Qwen-VL `messages` column to episode rows.

    Args:
        policy: a `KeyframePolicy` or a `parse_policy` string.
        cameras: the camera keys to decode (None: every camera; then call `for_dataset` or pass `cameras`
            before asking for `features`).
        prompt: a `str.format` template; `{keyframes}` marks where the visual blocks go (else they come
            first); other fields: task, episode_index, length, duration, fps, cameras, num_keyframes, timestamps.
        visual: "images" (one labelled image block per keyframe), "video" (one video block per camera),
            "contact_sheet" (timestamped grids) or "none".
        image_format: stored images are JPEG ("png" for lossless), optionally downscaled to `image_width`.
        root: needed for frame-level input (the dataset root whose videos to decode).
        video_backend: the video decoder (`make_frame_provider`); `provider_options` its other options.
        video_access: how a Hub dataset's videos are read: "auto" (by byte range, a file downloaded whole when a
            decode needs most of it), "stream" or "download" (whole, before the batch). The frames, the output
            and the fingerprint are the same either way.
        passthrough: return the input columns too (Ray Data replaces a batch with the function's output).
    """

    policy: KeyframePolicy | str = "uniform:8"
    cameras: tuple[str, ...] | None = None
    prompt: str = DEFAULT_PROMPT
    system_prompt: str | None = None
    visual: Visual = "images"
    label: str = DEFAULT_LABEL
    image_format: ImageFormat = "jpeg"
    jpeg_quality: int = 90
    image_width: int | None = None
    sheet_columns: int = 4
    sheet_tile_width: int = 256
    sheet_frames: int = 16
    root: str | None = None
    video_backend: VideoBackend = "auto"
    provider_options: tuple[tuple[str, object], ...] = ()
    passthrough: bool = False
    video_access: VideoAccess = DEFAULT_VIDEO_ACCESS

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
        unknown = sorted({k for k, _ in self.provider_options} - PROVIDER_OPTIONS)
        if unknown:
            raise ValueError(f"provider_options: unknown option(s) {unknown}; choose from {sorted(PROVIDER_OPTIONS)}")
        if self.visual not in VISUALS:
            raise ValueError(f"visual must be one of {VISUALS}, got {self.visual!r}")
        if self.image_format not in ("jpeg", "png"):
            raise ValueError(f"image_format must be 'jpeg' or 'png', got {self.image_format!r}")
        if self.video_backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {self.video_backend!r}")
        check_video_access(self.video_access)
        check_template("prompt", self.prompt, PROMPT_FIELDS)
        if self.system_prompt is not None:
            check_template("system_prompt", self.system_prompt, PROMPT_FIELDS - {"keyframes"})
        check_template("label", self.label, {"camera", "t", "i"})

    # -- pickling / hashing: configuration only (PicklesAsConfig) -----------------------------------
    def make_runtime(self) -> _Runtime:
        torch_fork_guard()
        return _Runtime()

    def fingerprint(self) -> str:
        """Stable hash of the configuration and the package version (same config: same string). How the videos
        are read (`video_access`) is left out: streamed or downloaded, the frames are the same."""
        import dataclasses

        from .. import __version__

        same = dataclasses.replace(self, video_access=DEFAULT_VIDEO_ACCESS)
        return hashlib.sha256(f"{__version__}|{same!r}".encode()).hexdigest()[:16]

    @classmethod
    def for_dataset(cls, dataset: Dataset, **options: Any) -> KeyframeTransform:
        """A transform whose `cameras` default to every camera found in an episode table."""
        if options.get("cameras") is None:
            keys = list(dict.fromkeys(k for row_keys in dataset["camera_keys"] for k in row_keys))
            if not keys:
                raise ValueError("the dataset has no cameras to take keyframes from")
            options["cameras"] = tuple(keys)
        return cls(**options)

    def map(self, dataset: Dataset | IterableDataset, *, num_proc: int | None = None, batch_size: int = 1,
            cache_dir: str | Path | None = None, use_cache: bool = True, desc: str | None = None,
            progress: bool = False) -> Dataset | IterableDataset:
        """`dataset.map(self, batched=True, ...)` with declared features and a cache file named by fingerprint.

        An in-memory table (what `load_episodes` returns) has no cache files, so a plain `map` would decode
        again; here the result goes to `<cache_dir>/keyframes-<fingerprint>.arrow` (default: the datasets
        cache) and the same transform on the same table loads it instead. An `IterableDataset` is mapped
        lazily, as `datasets` does (rows are decoded as they are read; no cache file, no `num_proc`).
        `progress`: off a terminal, where datasets' own bar is off, each process logs its episodes done
        (with rate and ETA) every `LEROBOT_KEYFRAMES_PROGRESS_INTERVAL` seconds.
        """
        from datasets import IterableDataset
        from datasets.fingerprint import Hasher

        if isinstance(dataset, IterableDataset):
            if (num_proc or 1) > 1:
                raise ValueError("num_proc: an IterableDataset is mapped lazily in the reading process; map a "
                                 "Dataset for worker processes (or read the iterable with a DataLoader's workers)")
            lazy = dataset.map(self, batched=True, batch_size=batch_size)
            # `cast`, not `map(features=...)`: datasets 5 then yields the Image columns still encoded
            return lazy if dataset.features is None else lazy.cast(self.features(dataset.features))
        fingerprint = Hasher.hash([dataset._fingerprint, self.fingerprint(), batch_size])
        workers = num_proc if (num_proc or 1) > 1 else None
        kwargs: dict[str, Any] = dict(
            batched=True, batch_size=batch_size, writer_batch_size=max(1, batch_size) * 8,
            features=self.features(dataset.features), num_proc=workers,
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
        from ..progress import progress_mode

        if progress and progress_mode() == "log":  # the fingerprint above stays the transform's
            return dataset.map(_LoggedProgress(self, len(dataset), workers), with_rank=True, **kwargs)
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
        so the rank changes nothing. Rows of a Hub dataset read their videos by byte range (each worker its own
        connections); with `video_access="download"` the batch's files of the chosen cameras are downloaded here."""
        batch = {k: to_python(v) for k, v in batch.items()}
        key = "timestamps" if "timestamps" in batch else "timestamp"
        if key not in batch:
            raise ValueError(
                "expected episode rows (a 'timestamps' column, from load_episodes) or frame rows grouped "
                "per episode (a 'timestamp' list column, from group_by_episode)"
            )
        values = batch[key]
        single = len(values) > 0 and not isinstance(values[0], (list, tuple))
        rows = [batch] if single else [{k: v[i] for k, v in batch.items()} for i in range(len(values))]
        episodes = [self._episode(row) for row in rows]  # typed once, at the boundary
        if self.video_access == "download" and any(ep.repo_id for ep in episodes):
            from ..dataset.source import fetch_episode_videos

            fetch_episode_videos(episodes, self.cameras)
        results = [self.process_episode(ep) for ep in episodes]
        columns = self.output_columns()
        if single:
            out = dict(batch) if self.passthrough else {}
            out.update(results[0])
            return out
        out = {k: list(v) for k, v in batch.items()} if self.passthrough else {}
        for c in columns:
            out[c] = [r[c] for r in results]
        return out

    def process_episode(self, row: Mapping[str, Any] | Episode) -> dict[str, Any]:
        """The new columns for one episode (a row, its `Episode`, or one grouped frame-level row)."""
        episode = self._episode(row)
        cams = self.cameras or episode.camera_keys
        times = [float(t) for t in self.policy.timestamps(episode)]
        decoded = self._decode(episode, [(episode, times, cam) for cam in cams])
        out: dict[str, Any] = {}
        for cam, frames in zip(cams, decoded):
            out[keyframe_column(cam)] = [self._encode(im) for im in frames.to_pil()]
            out[timestamp_column(cam)] = times
        if self.cameras is not None:
            for cam in self.cameras:
                out.setdefault(keyframe_column(cam), [])
                out.setdefault(timestamp_column(cam), [])
        out["messages"] = self._messages(episode, cams, times, list(zip(cams, decoded)))
        return out

    # -- pieces ---------------------------------------------------------------------------------------------
    def _decode(self, episode: Episode, requests: list[tuple[Episode, list[float], str]]) -> list[Frames]:
        """The frames of every (episode, times, camera) request, each complete (else one error naming all)."""
        provider = self._provider(episode)
        if hasattr(provider, "frames_at_many"):
            decoded = provider.frames_at_many(requests)
        else:
            decoded = [provider.frames_at(*r) for r in requests]
        for (_, times, cam), frames in zip(requests, decoded):
            missing = [times[i] for i in frames.missing]
            if missing:
                raise ValueError(f"episode {episode.episode_index}, camera {cam!r}, file {frames.file}: no frame "
                                 f"at time(s) {missing}")
        return decoded

    def _encode(self, image: Image.Image | None) -> dict[str, bytes | None]:
        from PIL import Image as PILImage

        assert image is not None  # `_decode` refused incomplete frames
        if self.image_width and image.width != self.image_width:
            height = max(1, round(image.height * self.image_width / image.width))
            image = image.resize((self.image_width, height), PILImage.Resampling.BICUBIC)
        buf = io.BytesIO()
        if self.image_format == "jpeg":
            image.convert("RGB").save(buf, format="JPEG", quality=self.jpeg_quality)
        else:
            image.save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    def _messages(self, episode: Episode, cams: Sequence[str], times: list[float],
                  per_camera: list[tuple[str, Frames]]) -> list[dict[str, Any]]:
        length = episode.length or len(episode.timestamps)
        values = {
            "task": episode.task,
            "episode_index": episode.episode_index,
            "length": length,
            "duration": length / episode.fps if episode.fps else 0.0,
            "fps": episode.fps,
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

    def _visual_blocks(self, episode: Episode, times: list[float],
                       per_camera: list[tuple[str, Frames]]) -> list[dict[str, Any]]:
        if self.visual == "none":
            return []
        blocks: list[dict[str, Any]] = []
        for cam, frames in per_camera:
            common = {"column": keyframe_column(cam), "camera": cam, "file": root_relative(frames.file, episode.root),
                      "episode_index": episode.episode_index}
            pts = [float(p) for p in frames.pts]
            if self.visual == "images":
                for i, t in enumerate(times):
                    if self.label:
                        blocks.append({"type": "text", "text": self.label.format(camera=cam, t=t, i=i + 1)})
                    blocks.append({"type": "image", "kind": "frame", **common, "indices": [i], "timestamps": [t],
                                   "pts": [pts[i]]})
            elif self.visual == "video":
                raw_fps = episode.fps
                total = episode.length or len(episode.timestamps)
                blocks.append({
                    "type": "video", "kind": "video", **common, "indices": list(range(len(times))),
                    "timestamps": times, "pts": pts, "fps": len(times) / total * raw_fps if total else raw_fps,
                    "raw_fps": raw_fps, "frames_indices": [int(i) for i in frames.indices], "total_num_frames": total,
                })
            else:  # contact_sheet
                blocks.extend(self._sheet_blocks(common, times, pts))
        return blocks

    def _sheet_blocks(self, common: dict[str, Any], times: list[float], pts: list[float]) -> list[dict[str, Any]]:
        from ..frames.blocks import _sheet_spans

        return [{"type": "image", "kind": "contact_sheet", **common, "indices": list(range(first, stop)),
                 "timestamps": times[first:stop], "pts": pts[first:stop], "sheet_columns": self.sheet_columns,
                 "tile_width": self.sheet_tile_width, "label": "{t:.2f} s"}
                for first, stop in _sheet_spans(len(times), self.sheet_frames)]

    # -- episodes and providers (per worker, never pickled) -------------------------------------------
    def _provider(self, episode: Episode) -> VideoFrameProvider | NullProvider:
        root = str(episode.root)
        providers = self.runtime().providers
        if root not in providers:
            from ..frames.provider import make_frame_provider

            providers[root] = make_frame_provider(root, video_backend=self.video_backend,  # type: ignore[misc]
                                                  video_access=self.video_access, **dict(self.provider_options))
        return providers[root]

    def _episode(self, row: Mapping[str, Any] | Episode) -> Episode:
        """The row's `Episode`; grouped frame-level rows are completed from the dataset root's metadata."""
        if isinstance(row, Episode) or "timestamps" in row:
            return Episode.from_row(row)
        if self.root is None:
            raise ValueError("frame-level rows need KeyframeTransform(root=<dataset root>) to find the videos")
        cache = self.runtime().episodes
        if not cache:
            from ..dataset import DatasetLayout, build_episode_rows

            cache.update((int(r["episode_index"]), r) for r in build_episode_rows(DatasetLayout.open(self.root)))
        return grouped_episode(row, self.root, cache, self.cameras)


class _LoggedProgress:
    """The transform, counting the episodes this process decodes into progress log lines (a log file has no
    bar); with `num_proc` each worker reports its own contiguous share of the table."""

    def __init__(self, transform: KeyframeTransform, rows: int, workers: int | None) -> None:
        self.transform, self.rows, self.workers = transform, rows, workers
        self.progress: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "progress": None}

    def __call__(self, batch: Mapping[str, Any], rank: int | None = None) -> dict[str, Any]:
        from ..progress import RunProgress

        if self.progress is None:  # the clock starts with this process's first batch
            share, desc = self.rows, "keyframes"
            if self.workers and rank is not None:  # datasets' contiguous shards: the first `rows % k` get one more
                share = self.rows // self.workers + (rank < self.rows % self.workers)
                desc = f"keyframes (worker {rank + 1} of {self.workers})"
            self.progress = RunProgress([desc], share, desc=desc, unit="episode", mode="log")
        out = self.transform(batch, rank)
        self.progress.advance(self.progress.desc, len(out["messages"]))  # datasets passes batches: one per row
        if self.progress.finished >= self.progress.total:
            self.progress.close()
        return out
