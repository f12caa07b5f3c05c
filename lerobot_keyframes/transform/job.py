"""The keyframes job, the library side of `lerobot-keyframes keyframes`: load the episode table, map
`KeyframeTransform` over it (cached by fingerprint), write it atomically and / or push it to the Hub."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from ..dataset.remote import DEFAULT_VIDEO_ACCESS, VideoAccess, check_video_access, log_summary
from ..frames.config import VIDEO_BACKENDS, VideoBackend
from ..frames.policies import parse_policy
from .keyframe_transform import KeyframeTransform
from .messages import DEFAULT_PROMPT, VISUALS, Visual

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

TableFormat = Literal["parquet", "arrow"]

KEYFRAMES_RECORD = "keyframes_config.json"  # in every output: what --overwrite may replace


@dataclass(frozen=True)
class KeyframesConfig:
    """Everything `lerobot-keyframes keyframes` does, as data."""

    FLAG_ALIASES: ClassVar[dict[str, str]] = {"backend": "video_backend"}  # the flag's name before 0.x

    source: str  # dataset root or Hub repo id (the SOURCE argument)
    out: str | None = None  # output directory; unset: nothing written (cached, or pushed with --push_to_hub)
    policy: str = "uniform:8"  # keyframe policy, e.g. uniform:8, fps:1, at:0,2.5, every_frame, motion+uniform:4@12
    cameras: tuple[str, ...] | None = None  # comma-separated camera keys; None or all: every camera
    episodes: tuple[int, ...] | None = None  # comma-separated episode indices; unset: all
    revision: str | None = None  # Hub revision of the source (branch, tag, commit); default: the v3.0 tag, else main
    num_proc: int | None = None  # datasets.map worker processes; unset: this process only
    batch_size: int = 1  # episodes per datasets.map batch
    format: TableFormat = "parquet"  # parquet (data/train-*.parquet shards) | arrow (save_to_disk)
    visual: Visual = "images"  # visual blocks of the messages: images|video|contact_sheet|none
    prompt: str = DEFAULT_PROMPT  # str.format template; {keyframes} places the visual blocks; {task}, {fps}, etc
    image_width: int | None = None  # downscale stored keyframes to this width (px); unset: full size
    jpeg_quality: int = 90  # JPEG quality of the stored keyframes (1-95)
    video_backend: VideoBackend = "auto"  # video decoder: auto|torchcodec|pyav|ffmpeg (auto falls back in that order, per file)
    video_access: VideoAccess = DEFAULT_VIDEO_ACCESS  # Hub videos: auto (byte ranges; a file mostly needed is downloaded) | stream | download (whole, first)
    push_to_hub: str | None = None  # Hub dataset repo id to push the table to; unset: no push
    private: bool = True  # push as a private dataset
    cache_dir: str | None = None  # where the datasets cache file goes; default: the datasets cache
    use_cache: bool = True  # reuse the cached result of the same settings; false: decode again
    overwrite: bool = False  # replace a non-empty --out
    max_shard_mb: int = 500  # target size of one parquet shard in MiB

    def __post_init__(self) -> None:
        if self.format not in ("parquet", "arrow"):
            raise ValueError(f"format must be 'parquet' or 'arrow', got {self.format!r}")
        if self.visual not in VISUALS:
            raise ValueError(f"visual must be one of {VISUALS}, got {self.visual!r}")
        if self.video_backend not in VIDEO_BACKENDS:
            raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {self.video_backend!r}")
        check_video_access(self.video_access)
        if self.max_shard_mb < 1:
            raise ValueError(f"max_shard_mb must be >= 1, got {self.max_shard_mb}")
        parse_policy(self.policy)
        if self.num_proc is not None and self.num_proc < 1:
            raise ValueError(f"num_proc must be >= 1, got {self.num_proc}")


def extract_keyframes(config: KeyframesConfig) -> Dataset:
    """Load the episode table, map `KeyframeTransform` over it (cached by fingerprint), write / push it.

    With `out`, the result is written atomically: `format="parquet"` as `out/data/train-*.parquet`
    shards (the Hub layout, features in the schema metadata), `format="arrow"` with `save_to_disk`;
    `out/keyframes_config.json` records the configuration. `push_to_hub` is `hub.run_keyframes`'s: it guards
    the target before this runs, then pushes the table without local paths (private unless `private=False`).
    """
    from ..dataset import load_episodes
    from ..dataset.episodes import require_episodes
    from ..dataset.layout import check_output_separate
    from ..dataset.source import is_local

    out = Path(config.out).expanduser().absolute() if config.out else None
    if out is not None and is_local(config.source):  # before anything is read, decoded or replaced
        check_output_separate(config.source, out)
    if config.cache_dir and is_local(config.source):  # the datasets cache files would land among the source's
        check_output_separate(config.source, config.cache_dir, what="--cache_dir", may_contain=True)
    if config.push_to_hub:  # the Hub target is guarded before any frame is decoded: the hub layer pushes
        raise ValueError("extract_keyframes does not push; lerobot_keyframes.hub.run_keyframes(config) checks the "
                         "target, extracts, then pushes the table without local paths")
    if out is not None and out.exists() and any(out.iterdir()):
        if not config.overwrite:
            raise FileExistsError(f"{out} already exists and is not empty; pass overwrite=True (CLI: --overwrite)")
        if not (out / KEYFRAMES_RECORD).is_file():  # `--out=~/my_dataset --overwrite` must never delete it
            raise FileExistsError(f"{out} holds files that are not a keyframes table written here (no "
                                  f"{KEYFRAMES_RECORD}); --overwrite replaces only an earlier output. Choose another "
                                  "folder.")
    episodes = load_episodes(config.source, revision=config.revision, episodes=config.episodes,
                             cameras=config.cameras, video_access=config.video_access)
    require_episodes(len(episodes), config.source, config.episodes, "--episodes")
    if out is not None and len(episodes):  # a Hub source: its snapshot folder is known only now
        check_output_separate(episodes[0]["root"], out)
    transform = KeyframeTransform.for_dataset(
        episodes, policy=config.policy, cameras=config.cameras, visual=config.visual, prompt=config.prompt,
        image_width=config.image_width, jpeg_quality=config.jpeg_quality, video_backend=config.video_backend,
        video_access=config.video_access,
    )
    result = transform.map(episodes, num_proc=config.num_proc, batch_size=config.batch_size,
                           cache_dir=config.cache_dir, use_cache=config.use_cache, progress=True)
    log_summary()  # this process's Hub video reads (datasets.map workers count their own)
    if out is not None:
        _write(result, out, config, transform)
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
        (payload / KEYFRAMES_RECORD).write_text(json.dumps(record, indent=2, default=str))
        if out.exists():
            shutil.rmtree(out)
        os.replace(payload, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

