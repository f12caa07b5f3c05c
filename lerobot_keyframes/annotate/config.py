"""Annotation configs: one small frozen dataclass per module, names following lerobot-annotate."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUESTION_TYPES = ("bbox", "keypoint", "count", "attribute", "spatial")


@dataclass(frozen=True)
class PlanConfig:
    """`plan`: subtasks from timestamped contact sheets, plan and memory rows, task rephrasings."""

    enabled: bool = True
    n_task_rephrasings: int = 4
    derive_task_from_video: str = "if_short"  # off | if_short | always
    derive_task_min_words: int = 3
    frames_per_second: float = 2.0
    max_frames_per_prompt: int = 40
    contact_sheet_columns: int = 5
    contact_sheet_frames_per_sheet: int = 20
    contact_sheet_frame_width: int = 224
    min_subtask_seconds: float = 1.0
    plan_max_steps: int = 8
    subtask_describe_first: bool = True
    emit_plan: bool = True
    emit_memory: bool = True
    keyframe_policy: str = "fps"  # "fps" (frames_per_second) or "motion+fps": add gripper/pause keyframes


@dataclass(frozen=True)
class InterjectionsConfig:
    """`interjections`: an acknowledgement at t0 and user cues on subtask boundaries with spoken replies."""

    enabled: bool = True
    max_interjections_per_episode: int = 1
    interjection_min_t: float = 1.0
    interjection_window_frames: int = 3


@dataclass(frozen=True)
class VqaConfig:
    """`vqa`: frame-grounded questions at `vqa_emission_hz`, answers in lerobot's five shapes."""

    enabled: bool = True
    vqa_emission_hz: float = 1.0
    question_types: tuple[str, ...] = QUESTION_TYPES
    restrict_to_default_camera: bool = False
    # lerobot 0.6.0/0.6.1 fail when one frame carries VQA of two cameras: rotate cameras across ticks.
    rotate_cameras: bool = True
    max_side: int = 448  # the image the model sees is resized to fit this; its size is recorded


@dataclass(frozen=True)
class MotionConfig:
    """`motion`: camera-agnostic rows from the robot's own signals (gripper, pauses); no VLM."""

    enabled: bool = False
    gripper_index: int = -1
    signal: str = "observation.state"


@dataclass(frozen=True)
class ExecutorConfig:
    """How much runs at once: episodes in flight and model requests in flight."""

    episode_parallelism: int = 8
    max_requests_in_flight: int = 32
    engine: str = "local"  # local: this process; ray: Ray Data (see RayConfig, docs/ray.md)


@dataclass(frozen=True)
class RayConfig:
    """`--executor.engine=ray`: where the Ray cluster is and how many workers of each kind to use.

    `address=None` starts a local Ray instance (or joins the one this process already started); "auto"
    joins a running cluster. VLM actors hold one backend each; CPU workers decode the frames they need.
    """

    address: str | None = None
    num_vlm_actors: int = 1
    num_gpus_per_actor: float = 0.0
    num_cpus_per_actor: float = 1.0
    cpu_workers: int = 2


@dataclass(frozen=True)
class AnnotateConfig:
    """A whole annotation run. `root` or `repo_id` names the source; output goes to `out` unless in place."""

    repo_id: str | None = None
    root: Path | None = None
    revision: str | None = None
    out: Path | None = None
    in_place: bool = False
    new_repo_id: str | None = None
    push_to_hub: bool = False
    private: bool | None = None  # None: private unless the source is known public (never public by accident)
    allow_source_overwrite: bool = False
    push_branch: str | None = None  # shard jobs: push staging to this branch of --new_repo_id ...
    push_staging_only: bool = False  # ... and write no dataset (`lerobot-keyframes merge` writes it once)
    staging_dir: Path | None = None
    only_episodes: tuple[int, ...] | None = None
    seed: int = 1729
    force: bool = False
    skip_validation: bool = False
    on_error: str = "skip"  # skip: report the episode and go on; stop: abort the run
    frame_backend: str = "auto"
    frame_cache_mb: int = 64  # decoded frames kept for the modules that ask for the same keyframes
    plan: PlanConfig = field(default_factory=PlanConfig)
    interjections: InterjectionsConfig = field(default_factory=InterjectionsConfig)
    vqa: VqaConfig = field(default_factory=VqaConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        if self.root is None and self.repo_id is None:
            raise ValueError("set --root (a local dataset) or --repo_id (a Hub dataset)")
        if self.executor.engine not in ("local", "ray"):
            raise ValueError(f"--executor.engine must be 'local' or 'ray', got {self.executor.engine!r}")
        if self.push_to_hub and not (self.new_repo_id or (self.repo_id and self.allow_source_overwrite)):
            raise ValueError("--push_to_hub=true needs --new_repo_id=<user/name> (or --allow_source_overwrite=true)")
        if self.push_staging_only and not (self.push_to_hub and self.push_branch):
            raise ValueError("--push_staging_only=true needs --push_to_hub=true and --push_branch=<branch>")
        if self.on_error not in ("skip", "stop"):
            raise ValueError(f"--on_error must be 'skip' or 'stop', got {self.on_error!r}")
        if self.frame_cache_mb < 0:
            raise ValueError(f"--frame_cache_mb must be >= 0, got {self.frame_cache_mb}")
        if self.plan.derive_task_from_video not in ("off", "if_short", "always"):
            raise ValueError("--plan.derive_task_from_video must be off, if_short or always")
        unknown = set(self.vqa.question_types) - set(QUESTION_TYPES)
        if unknown:
            raise ValueError(f"--vqa.question_types: unknown {sorted(unknown)}; known {list(QUESTION_TYPES)}")


def config_hash(*parts: Any) -> str:
    """A short stable hash of dataclasses / dicts / strings, for staging keys and provenance."""

    def plain(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, dict):
            return {str(k): plain(v) for k, v in sorted(obj.items())}
        if isinstance(obj, (list, tuple)):
            return [plain(v) for v in obj]
        if isinstance(obj, Path):
            return str(obj)
        return obj

    blob = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
