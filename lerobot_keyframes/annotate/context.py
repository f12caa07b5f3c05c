"""What a module sees of one episode: `EpisodeView` (its times, cameras, the run's config, a seeded RNG) before
any frame or model, and `EpisodeContext` (the view plus its frames and the model) while it runs.

Nothing here knows a module: modules import this, never the other way round.
"""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dataset.records import Episode
from ..vlm.jsonparse import bounded
from .config import AnnotateConfig
from .frame_store import EpisodeFrames

if TYPE_CHECKING:
    from PIL import Image

    from ..frames.policies import KeyframePolicy
    from ..frames.provider import FrameProvider
    from ..vlm.base import VlmBackend

logger = logging.getLogger(__name__)
RAW_KEEP_CHARS = 20_000  # what an error keeps of a model answer, for --verbose logging


class AnnotationError(RuntimeError):
    """A module could not annotate an episode; the message names episode, module, camera and time."""

    def __init__(self, message: str, *, episode_index: int, module: str, raw: str | None = None) -> None:
        super().__init__(f"episode {episode_index}, module {module}: {message}")
        self.episode_index = episode_index
        self.module = module
        self.raw = raw


@dataclass
class CallStats:
    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def default_camera(episode: Episode, camera_key: str | None) -> str | None:
    """`--vlm.camera_key` when set (checked against the dataset before any work), else the first camera."""
    if camera_key:
        return camera_key
    return episode.camera_keys[0] if episode.camera_keys else None


@dataclass
class EpisodeView:
    """One episode of the run, before any frame is decoded. Times always come from `timestamps` (the exact float32
    parquet values). `episode` is the row as `datasets` hands it (or its `Episode`); `record` is its typed
    `Episode`, made once here. `module` is the module at work (errors name it)."""

    episode: Mapping[str, Any] | Episode
    config: AnnotateConfig
    camera_key: str | None = None  # --vlm.camera_key
    module: str = "annotate"
    record: Episode = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.record = Episode.from_row(self.episode)

    @property
    def index(self) -> int:
        return self.record.episode_index

    @property
    def timestamps(self) -> np.ndarray:
        return self.record.timestamps

    @property
    def fps(self) -> float:
        return self.record.fps

    @property
    def duration(self) -> float:
        ts = self.timestamps
        return float(ts[-1]) + 1.0 / self.fps if len(ts) else 0.0

    @property
    def task(self) -> str:
        return self.record.task

    @property
    def cameras(self) -> list[str]:
        return list(self.record.camera_keys)

    @property
    def default_camera(self) -> str:
        if self.camera_key and self.camera_key not in self.cameras:  # prepare_run checks the dataset first
            raise AnnotationError(f"--vlm.camera_key={self.camera_key!r} is not a camera of this episode; it has "
                                  f"{self.cameras}", episode_index=self.index, module=self.module)
        camera = default_camera(self.record, self.camera_key)
        if camera is None:
            raise AnnotationError("the dataset has no camera to annotate", episode_index=self.index, module=self.module)
        return camera

    def rng(self, module: str | None = None) -> random.Random:
        """A per-(seed, episode, module) RNG: the same choices on every run, whatever else runs."""
        return random.Random(zlib.crc32(f"{self.config.seed}:{self.index}:{module or self.module}".encode()))

    def frame_time(self, index: int) -> float:
        """The exact parquet timestamp of frame `index`, as a Python float (float32 value)."""
        return float(self.timestamps[index])


@dataclass
class EpisodeContext(EpisodeView):
    """The view plus what a running module uses: the episode's frames (decoded at most once, shared by its
    modules) and the model (`ask`). The engine sets `module` before each module runs."""

    provider: FrameProvider | None = None
    vlm: VlmBackend | None = None  # a backend with `agenerate(conversations, schemas)` (or a scripted one)
    requests: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(32))
    stats: CallStats = field(default_factory=CallStats)
    model_family: str = "qwen2_5_vl"
    frames: EpisodeFrames | None = None  # the frames of this episode, shared by its modules

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.camera_key is None:  # the VLM's --vlm.camera_key
            self.camera_key = getattr(self.vlm, "camera_key", None) or getattr(
                getattr(self.vlm, "config", None), "camera_key", None)

    async def keyframes(self, camera: str, policy: KeyframePolicy) -> tuple[list[Image.Image], list[float]]:
        """The frames the module declared (a `frames.policies` policy on `camera`) and their exact times."""
        try:
            times = [float(t) for t in policy.timestamps(self.episode)]  # the row: policies read its columns
        except ValueError as exc:
            raise AnnotationError(f"camera {camera}: {exc}", episode_index=self.index, module=self.module) from exc
        return await self.frames_at(camera, times), times

    async def frames_at(self, camera: str, times: Sequence[float]) -> list[Image.Image]:
        """Frames (PIL) at exact episode times, from the episode's frame store (decoded at most once).

        The provider's own error already names file, episode, camera and time; it is kept as the cause.
        """
        if self.frames is None:
            self.frames = EpisodeFrames.for_row(self.episode, self.provider)
        try:
            return await self.frames.get(camera, times)
        except AnnotationError:
            raise
        except Exception as exc:
            raise AnnotationError(f"camera {camera}: {exc}", episode_index=self.index, module=self.module) from exc

    async def ask(self, conversations: list[list[dict[str, Any]]],
                  schemas: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
        """Ask the model; every answer parsed against its schema, or an AnnotationError with the raw text.

        A request the VLM could not complete (a transport fault after its retries, an engine that
        refused it) fails this episode only, as an AnnotationError; the error quotes a bounded slice."""
        if self.vlm is None:
            raise AnnotationError("no model to ask (this run has no VLM)", episode_index=self.index,
                                  module=self.module)
        async with self.requests:
            results = await self.vlm.agenerate(conversations, schemas, raise_errors=False)
        answers = []
        for result in results:
            self.stats.calls += 1
            self.stats.prompt_tokens += int(getattr(result, "prompt_tokens", 0) or 0)
            self.stats.completion_tokens += int(getattr(result, "completion_tokens", 0) or 0)
            parsed = getattr(result, "parsed", None)
            if not isinstance(parsed, dict):
                self.stats.failures += 1
                error = getattr(result, "failure", None) or getattr(result, "error", None) or "no valid JSON answer"
                raw = str(getattr(result, "text", "") or "")
                raise AnnotationError(
                    f"model answer rejected ({bounded(str(error))}); raw text: {bounded(raw)!r}",
                    episode_index=self.index,
                    module=self.module,
                    raw=raw[:RAW_KEEP_CHARS],
                )
            answers.append(parsed)
        return answers
