"""What a module needs to annotate one episode: its frames, its times, the model, a seeded RNG."""

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

if TYPE_CHECKING:
    from PIL import Image

    from ..frames.policies import KeyframePolicy
    from ..frames.provider import FrameProvider
    from ..vlm.base import VlmBackend
    from .keyframes import EpisodeFrames

logger = logging.getLogger(__name__)


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


@dataclass
class EpisodeContext:
    """One episode, seen by the modules. Times always come from `timestamps` (exact float32 parquet values).

    `episode` is the row as `datasets` hands it (modules that read further columns use it); `record` is its
    typed `Episode`, made once here, which every property below reads (no array is rebuilt in a loop).
    """

    episode: Mapping[str, Any]
    config: AnnotateConfig
    provider: FrameProvider
    vlm: VlmBackend  # a vlm backend with `agenerate(conversations, schemas)` (or a scripted one)
    requests: asyncio.Semaphore
    stats: CallStats = field(default_factory=CallStats)
    model_family: str = "qwen2_5_vl"
    frames: EpisodeFrames | None = None  # the frames of this episode, shared by its modules
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
    def vqa_cameras(self) -> list[str]:
        """The cameras VQA asks about: video cameras (image-stored ones too with `--vqa.image_cameras`)."""
        from .keyframes import vqa_cameras

        return vqa_cameras(self.record, self.config.vqa)

    @property
    def default_camera(self) -> str:
        wanted = getattr(self.vlm, "camera_key", None) or getattr(
            getattr(self.vlm, "config", None), "camera_key", None
        )
        if wanted:
            if wanted not in self.cameras:  # prepare_run checks the dataset; this guards direct use
                raise AnnotationError(f"--vlm.camera_key={wanted!r} is not a camera of this episode; it has "
                                      f"{self.cameras}", episode_index=self.index, module="plan")
            return wanted
        if not self.cameras:
            raise AnnotationError("the dataset has no camera to annotate", episode_index=self.index, module="plan")
        return self.cameras[0]

    def rng(self, module: str) -> random.Random:
        """A per-(seed, episode, module) RNG: the same choices on every run, whatever else runs."""
        return random.Random(zlib.crc32(f"{self.config.seed}:{self.index}:{module}".encode()))

    def frame_time(self, index: int) -> float:
        """The exact parquet timestamp of frame `index`, as a Python float (float32 value)."""
        return float(self.timestamps[index])

    async def keyframes(self, module: str, camera: str, policy: KeyframePolicy
                        ) -> tuple[list[Image.Image], list[float]]:
        """The frames a module declared (a `frames.policies` policy on `camera`) and their exact times."""
        try:
            times = [float(t) for t in policy.timestamps(self.episode)]  # the row: policies read its columns
        except ValueError as exc:
            raise AnnotationError(f"camera {camera}: {exc}", episode_index=self.index, module=module) from exc
        return await self.frames_at(module, camera, times), times

    async def frames_at(self, module: str, camera: str, times: Sequence[float]) -> list[Image.Image]:
        """Frames (PIL) at exact episode times, from the episode's frame store (decoded at most once).

        The provider's own error already names file, episode, camera and time; it is kept as the cause.
        """
        if self.frames is None:
            from .keyframes import EpisodeFrames, row_keyframes

            self.frames = EpisodeFrames(self.record, self.provider, row_keyframes(self.episode))
        try:
            return await self.frames.get(camera, times)
        except AnnotationError:
            raise
        except Exception as exc:
            raise AnnotationError(f"camera {camera}: {exc}", episode_index=self.index, module=module) from exc

    async def ask(
        self, module: str, conversations: list[list[dict[str, Any]]], schemas: list[dict[str, Any] | None]
    ) -> list[dict[str, Any]]:
        """Ask the model; every answer parsed against its schema, or an AnnotationError with the raw text.

        A request the VLM could not complete (a transport fault after its retries, an engine that
        refused it) fails this episode only, as an AnnotationError; the error quotes a bounded slice."""
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
                    module=module,
                    raw=raw[:RAW_KEEP_CHARS],
                )
            answers.append(parsed)
        return answers


RAW_KEEP_CHARS = 20_000  # what an error keeps of a model answer, for --verbose logging
