"""Annotation configs: one small frozen dataclass per module, names following lerobot-annotate."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

from ..dataset.remote import DEFAULT_VIDEO_ACCESS, VideoAccess
from ..frames.config import VideoBackend
from ..language.vocabulary import VQA_QUESTION_TYPES, QuestionType
from ..quality.config import QualityConfig

# The option sets of the configs below: each a `Literal` (the flags show them as {a,b,...}), checked on creation.
DeriveTaskFromVideo = Literal["off", "if_short", "always"]
PlanKeyframePolicy = Literal["fps", "motion+fps"]
OnError = Literal["skip", "stop"]
ExecutorEngine = Literal["local", "ray"]


@dataclass(frozen=True)
class TaskAugAxesConfig:
    """`plan.task_aug_axes`: lerobot-annotate's 5-axis task augmentation (EgoMimic-style), one call per episode.
    Each count is a most: an axis whose element the task does not name (no arm, ...) gets fewer or none."""

    enabled: bool = False  # task_aug rows from these per-axis variants instead of --plan.n_task_rephrasings
    synonym_paraphrase: int = 3  # paraphrases keeping every detail of the task
    omit_arm: int = 3  # variants without the arm the task names
    omit_orientation: int = 2  # variants without the task's orientation cues
    omit_grasp_method: int = 2  # variants without the task's grasp method
    combined_omissions: int = 2  # variants without two of arm, orientation and grasp at once


@dataclass(frozen=True)
class PlanConfig:
    """`plan`: subtasks from timestamped contact sheets, plan and memory rows, task rephrasings."""

    enabled: bool = True  # run the plan module: subtask, plan, memory and task_aug rows
    n_task_rephrasings: int = 4  # task_aug rows at the first frame: the task and this many rephrasings (0: none)
    derive_task_from_video: DeriveTaskFromVideo = "if_short"  # off | if_short | always
    derive_task_min_words: int = 3  # if_short: a task with fewer words (or a placeholder) is derived from the video
    frames_per_second: float = 2.0  # sampling rate (Hz) of the frames put on the contact sheets
    max_frames_per_prompt: int = 40  # sampled frames per segmentation window (one describe + segment prompt each)
    contact_sheet_columns: int = 5  # tiles per row of a contact sheet
    contact_sheet_frames_per_sheet: int = 20  # frames per contact sheet image
    contact_sheet_frame_width: int = 224  # width of one contact sheet tile (px)
    min_subtask_seconds: float = 1.0  # subtasks shorter than this (s) are merged into a neighbour
    plan_max_steps: int = 8  # most subtasks per episode and steps per plan
    subtask_describe_first: bool = True  # ask for a description of each window before segmenting it (one more call)
    emit_plan: bool = True  # write a plan row (the remaining steps) at each subtask start
    emit_memory: bool = True  # write memory rows (what is done so far) at each subtask start after the first
    keyframe_policy: PlanKeyframePolicy = "fps"  # "fps" (frames_per_second) or "motion+fps": add gripper/pause keyframes
    contact_sheet_quality: int = 84  # JPEG quality (1-100) the contact sheets are compressed at before the model sees them
    subtask_seeded_relabel: bool = False  # relabel each span from the previous/own/next span's sheets (one more call per span)
    subtask_relabel_frames: int = 5  # frames per span sheet in the relabel pass (with subtask_seeded_relabel)
    task_aug_axes: TaskAugAxesConfig = field(default_factory=TaskAugAxesConfig)
    # Grounding (annotate/modules/grounding.py): the signal and gripper entry are --motion.signal / --motion.gripper_index.
    snap_to_signals: bool | None = None  # move subtask boundaries to the nearest robot event (unset: when the dataset has a usable signal)
    snap_tolerance_s: float = 1.0  # a boundary moves to an event at most this far (s): about a VLM's error at 1-2 frames/s
    events_in_prompt: bool = True  # list the robot's events (arm stops/moves, gripper closes/opens) in the segmentation prompt


@dataclass(frozen=True)
class InterjectionsConfig:
    """`interjections`: an acknowledgement at t0 and user cues on subtask boundaries with spoken replies."""

    enabled: bool = True  # run the interjections module (needs the plan module's spans, staged or this run)
    max_interjections_per_episode: int = 1  # most user cues per episode, on seeded-random subtask boundaries
    interjection_min_t: float = 1.0  # only subtasks starting at or after this time (s) get a cue
    interjection_window_frames: int = 3  # frames shown to the model with each cue (unset seconds: up to the boundary)
    interjection_window_seconds: float | None = None  # the frames spread over this many s centred on the boundary


@dataclass(frozen=True)
class VqaConfig:
    """`vqa`: frame-grounded questions at `vqa_emission_hz`, answers in lerobot's five shapes."""

    enabled: bool = True  # run the VQA module: question and answer event rows
    vqa_emission_hz: float = 1.0  # VQA ticks per second of episode
    question_types: tuple[QuestionType, ...] = VQA_QUESTION_TYPES  # comma-separated types, one drawn per question (seeded)
    restrict_to_default_camera: bool = False  # ask about the default camera only (--vlm camera key, else the first)
    # lerobot 0.6.1's validator rejects VQA on cameras stored as images in the parquet: video cameras only by default
    image_cameras: bool = False  # also ask about image-stored cameras (validate with --vqa_on_image_cameras=true)
    # lerobot 0.6.0/0.6.1 fail when one frame carries VQA of two cameras: rotate cameras across ticks.
    rotate_cameras: bool = True  # one camera per tick, in turn; false: every camera at every tick
    max_side: int = 448  # the image the model sees is resized to fit this; its size is recorded
    K: int = 1  # consecutive frames per tick (lerobot-annotate), each its own question, grounded on that frame


@dataclass(frozen=True)
class MotionConfig:
    """`motion`: camera-agnostic rows from the robot's own signals (gripper, pauses); no VLM."""

    enabled: bool = False  # run the motion module: gripper open/close and arm-at-rest rows
    gripper_index: int | None = None  # entry of the signal that is the gripper (unset: the one meta/info.json names gripper; motion rows: else the last)
    signal: str = "observation.state"  # numeric vector column of the data parquet to read the motion from (else action)


@dataclass(frozen=True)
class ExecutorConfig:
    """How much runs at once: episodes in flight and model requests in flight."""

    # episodes annotated at once (ray: per actor batch); unset: enough to fill the engine's batches
    # (in-process: 2 x --vlm.batch_size or --vlm.max_num_seqs, at most 64; servers: --vlm.client_concurrency)
    episode_parallelism: int | None = None
    max_requests_in_flight: int = 32  # model requests in flight at once (ray: per actor)
    engine: ExecutorEngine = "local"  # local: this process; ray: Ray Data (see RayConfig, docs/ray.md)


@dataclass(frozen=True)
class RayConfig:
    """`--executor.engine=ray`: where the Ray cluster is and how many workers of each kind to use.

    `address=None` starts a local Ray instance (or joins the one this process already started); "auto"
    joins a running cluster. VLM actors hold one VLM each; CPU workers decode the frames they need.
    """

    address: str | None = None  # Ray cluster to join (auto, ray://host:port); unset: the running or a new local Ray
    num_vlm_actors: int = 1  # VLM actors, each holding one model (its own engine or server client)
    num_gpus_per_actor: float = 0.0  # GPUs reserved per VLM actor (fractions allowed)
    num_cpus_per_actor: float = 1.0  # CPUs reserved per VLM actor
    cpu_workers: int = 2  # CPU tasks decoding frames ahead of the VLM actors


@dataclass(frozen=True)
class AnnotateConfig:
    """A whole annotation run. `root` or `repo_id` names the source; output goes to `out` unless in place."""

    # lerobot-annotate's names for the same knobs (accepted as flags and in --config_path files).
    FLAG_ALIASES: ClassVar[dict[str, str]] = {"push_private": "private", "frame_backend": "video_backend"}

    repo_id: str | None = None  # source dataset on the Hub (user/name); --root wins when both are set
    root: Path | None = None  # source dataset root on disk
    revision: str | None = None  # Hub revision of --repo_id (branch, tag, commit); default: the v3.0 tag, else main
    out: Path | None = None  # output dataset root; default: ./<name>_annotated (unused with --in_place)
    in_place: bool = False  # write the language columns into the source root itself
    new_repo_id: str | None = None  # Hub dataset (user/name) that --push_to_hub pushes to
    push_to_hub: bool = False  # push the result to the Hub when it validates (needs --new_repo_id)
    push_commit_message: str | None = None  # commit message of the push (unset: a generated one)
    private: bool | None = None  # None: private unless the source is known public (never public by accident)
    allow_source_overwrite: bool = False  # without --new_repo_id, let --push_to_hub push back to --repo_id
    # --push_to_hub=true --create_pr=true: a pull request on --repo_id (else --new_repo_id) with the data parquet and
    # meta/ only, no video; the owner merges it and moves the v3.0 tag
    create_pr: bool = False  # publish as a pull request on the source repo instead of pushing a dataset
    allow_row_loss: bool = False  # push even if an episode of the target repo loses language rows there
    push_branch: str | None = None  # shard jobs: push staging to this branch of --new_repo_id ...
    push_staging_only: bool = False  # ... and write no dataset (`lerobot-keyframes merge` writes it once)
    staging_dir: Path | None = None  # where finished modules are staged per episode; default: <out>.staging
    only_episodes: tuple[int, ...] | None = None  # comma-separated episode indices to annotate; unset: all
    seed: int = 1729  # seeds the per-episode choices (interjection boundaries, VQA question types)
    force: bool = False  # recompute every module instead of reusing staged results
    # existing language rows (human labels, earlier runs) of the styles no enabled module produces are kept;
    # true: an annotated episode's rows are all replaced by this run's
    replace_existing: bool = False  # replace every existing language row of the annotated episodes
    skip_validation: bool = False  # write despite validation errors, except structural ones (row placement)
    on_error: OnError = "skip"  # skip: report the episode and go on; stop: abort the run
    video_backend: VideoBackend = "auto"  # video decoder (auto falls back torchcodec, pyav, ffmpeg, per file)
    video_access: VideoAccess = DEFAULT_VIDEO_ACCESS  # Hub videos: auto (byte ranges; a file mostly needed is downloaded) | stream | download (whole, first)
    frame_cache_mb: int = 64  # decoded frames kept for the modules that ask for the same keyframes
    plan: PlanConfig = field(default_factory=PlanConfig)
    interjections: InterjectionsConfig = field(default_factory=InterjectionsConfig)
    vqa: VqaConfig = field(default_factory=VqaConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    # modules of your own, run with the built-in ones (each switched by its --<name>.enabled, flags --<name>.*)
    modules: tuple[str, ...] = ()  # comma-separated pkg.module:Class or entry point names (group lerobot_keyframes.modules)
    # their configs by module name (flags --<name>.*; a Mapping is accepted and kept as sorted pairs)
    module_configs: tuple[tuple[str, Any], ...] = ()
    quality: QualityConfig = field(default_factory=QualityConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def module_config(self, name: str, default: type | None = None) -> Any:
        """The config of module `name`: the field of that name (the built-in modules: `plan`, ...), else its entry
        of `module_configs`, else `default()` (the module's config class with its defaults). The registry keeps
        a module of one's own from taking the name of a field."""
        if name in _field_names(type(self)):
            return getattr(self, name)
        found = dict(self.module_configs).get(name)
        return found if found is not None or default is None else default()

    def __post_init__(self) -> None:
        # classes and mappings as given in Python, kept as names and sorted pairs (picklable, hashable, stable)
        object.__setattr__(self, "modules", tuple(_module_spec(m) for m in self.modules))
        configs = self.module_configs.items() if isinstance(self.module_configs, Mapping) else self.module_configs
        object.__setattr__(self, "module_configs", tuple(sorted((str(k), v) for k, v in configs)))
        if self.root is None and self.repo_id is None:
            raise ValueError("set --root (a local dataset) or --repo_id (a Hub dataset)")
        check_options(self)
        if self.create_pr and not self.push_to_hub:
            raise ValueError("--create_pr=true needs --push_to_hub=true")
        if self.create_pr and not (self.repo_id or self.new_repo_id):
            raise ValueError("--create_pr=true opens a pull request on --repo_id (the Hub source) or --new_repo_id")
        if self.create_pr and self.push_staging_only:
            raise ValueError("--create_pr=true is for the run that publishes; a shard job (--push_staging_only) "
                             "pushes staging, and `merge --create_pr=true` opens the pull request")
        if self.push_to_hub and not (self.new_repo_id or (self.repo_id and (self.allow_source_overwrite
                                                                            or self.create_pr))):
            raise ValueError("--push_to_hub=true needs --new_repo_id=<user/name> (or --create_pr=true for a pull "
                             "request on --repo_id, or --allow_source_overwrite=true)")
        if self.push_staging_only and not (self.push_to_hub and self.push_branch):
            raise ValueError("--push_staging_only=true needs --push_to_hub=true and --push_branch=<branch>")
        if self.frame_cache_mb < 0:
            raise ValueError(f"--frame_cache_mb must be >= 0, got {self.frame_cache_mb}")
        seconds = self.interjections.interjection_window_seconds
        if seconds is not None and not seconds >= 0:
            raise ValueError(f"--interjections.interjection_window_seconds must be >= 0, got {seconds}")
        if self.vqa.K < 1:
            raise ValueError(f"--vqa.K must be >= 1, got {self.vqa.K}")
        if not 1 <= self.plan.contact_sheet_quality <= 100:
            raise ValueError(f"--plan.contact_sheet_quality must be a JPEG quality from 1 to 100, got "
                             f"{self.plan.contact_sheet_quality}")
        if not self.plan.snap_tolerance_s >= 0:
            raise ValueError(f"--plan.snap_tolerance_s must be >= 0, got {self.plan.snap_tolerance_s}")


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


# module classes given to AnnotateConfig in Python, by the name they are kept under: this process uses the class
# itself (one defined in a notebook or a function too); another process (a Ray actor) imports it by that name
_GIVEN_CLASSES: dict[str, type] = {}


def _module_spec(module: Any) -> str:
    """`pkg.module:Class` for a module class given in Python (remembered in `_GIVEN_CLASSES`); a string as it is."""
    if isinstance(module, str):
        return module.strip()
    if isinstance(module, type):
        spec = f"{module.__module__}:{module.__qualname__}"
        _GIVEN_CLASSES[spec] = module
        return spec
    raise TypeError(f"modules: expected 'pkg.module:Class', an entry point name or a class, got {module!r}")


def given_class(spec: str) -> type | None:
    """The class given in Python under `spec` in this process, if any (see `_GIVEN_CLASSES`)."""
    return _GIVEN_CLASSES.get(spec)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _check_option(flag: str, value: Any, options: Any) -> None:
    allowed = get_args(options)
    if value not in allowed:
        raise ValueError(f"--{flag} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def check_options(config: Any, prefix: str = "") -> None:
    """Every `Literal` field of a config dataclass (and of the configs nested in it) holds one of its options.

    A tuple of a `Literal` (`vqa.question_types`) is checked item by item. The error names the flag."""
    hints = _type_hints(type(config))
    for f in dataclasses.fields(config):
        tp, value, flag = hints[f.name], getattr(config, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            check_options(value, f"{flag}.")
        elif get_origin(tp) is Literal:
            _check_option(flag, value, tp)
        elif get_origin(tp) is tuple and get_args(tp) and get_origin(get_args(tp)[0]) is Literal:
            unknown = [v for v in value if v not in get_args(get_args(tp)[0])]
            if unknown:
                raise ValueError(f"--{flag}: unknown {unknown}; known {list(get_args(get_args(tp)[0]))}")


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


# lerobot-annotate 0.6.1 settings accepted here with the same name but not (yet) acting the same way:
# (flag, its lerobot default, what happens here). A run that sets one to another value is warned once.
# Empty: every lerobot-annotate 0.6.1 plan/interjections/vqa knob acts as it does there.
UNAPPLIED_SETTINGS: tuple[tuple[str, Any, str], ...] = ()


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def unapplied_settings(config: AnnotateConfig) -> list[str]:
    """One message per lerobot-annotate setting that was changed but has no effect here (see UNAPPLIED_SETTINGS)."""
    out = []
    for name, default, effect in UNAPPLIED_SETTINGS:
        try:
            value = _get(config, name)
        except AttributeError:
            continue
        if value != default:
            out.append(f"--{name}={value} is accepted for lerobot-annotate compatibility but not applied: {effect}")
    return out
