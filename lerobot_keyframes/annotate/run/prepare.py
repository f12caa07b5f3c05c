"""Before the first episode: the source resolved, the run planned and checked, the episode table read, staging
opened and locked.

Every executor starts here (`prepare_run`) and runs the quality checks the same way (`run_quality_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import AnnotateConfig
from .keys import episodes_inputs
from .output import check_output_source
from .plan import RunPlan, plan_run
from .preflight import preflight
from .result import AnnotateResult
from .staging import RunLock, Staging

if TYPE_CHECKING:
    from datasets import Dataset

    from ...frames import FrameProvider
    from ...vlm import VlmConfig


@dataclass
class PreparedRun:
    """What every executor needs before the first episode: the plan, the episode rows, staging and the lock."""

    plan: RunPlan
    episodes: Dataset  # the episode table, what the Annotator maps over
    rows: list[dict[str, Any]]  # the same table as Python rows (read once)
    staging: Staging
    result: AnnotateResult
    lock: RunLock | None = None


def prepare_run(config: AnnotateConfig, vlm_config: VlmConfig | None = None, *,
                check_backend: bool = True) -> PreparedRun:
    """Resolve the source, plan the run, check it, read the episode table, fetch the videos needed and open staging.

    `vlm_config` keys the staged work (its model, sampling); its `camera_key` (`--vlm.camera_key`) that is not a
    camera of the dataset is an error here, before any work, never a silent switch to another camera. With
    `check_backend` its backend's extras are checked too (off when the caller brings its own VLM)."""
    from ...dataset.source import resolve_source

    source = resolve_source(config.root or config.repo_id, revision=config.revision)
    plan = plan_run(config, vlm_config, source)
    # locations, Hub target, privacy, extras: before any decode or model call
    preflight(plan, vlm_config if check_backend else None)
    lock = RunLock(plan.output_root, plan.staging_dir).acquire()  # one run per output: a second one fails here, at once
    try:
        return _prepare_locked(plan, getattr(vlm_config, "camera_key", None), lock)
    except BaseException:
        lock.release()
        raise


def _prepare_locked(plan: RunPlan, camera_key: str | None, lock: RunLock) -> PreparedRun:
    from ...dataset import load_episodes
    from ...dataset.episodes import require_episodes
    from ...language.writer import recover_interrupted_write

    source, out_root = plan.source, plan.output_root
    assert source is not None
    check_output_source(plan)  # an --out holding another dataset's annotated copy: refused now
    for root in {source.root, out_root} if source.repo_id is None else {out_root}:
        if root.is_dir():
            recover_interrupted_write(root)  # an in-place write killed midway is finished or undone first
    only = plan.config.only_episodes
    episodes = load_episodes(source.root, episodes=only)
    require_episodes(len(episodes), source.root, only, "--only_episodes")
    cameras = sorted({c["key"] for r in episodes for c in r["cameras"]})
    if camera_key and camera_key not in cameras:
        raise ValueError(f"--vlm.camera_key={camera_key!r} is not a camera of {source.root}; it has {cameras}")
    if source.repo_id is not None and plan.video_access == "download":  # else read by byte range when decoded
        source.fetch_files(sorted({c["path"] for r in episodes for c in r["cameras"] if c["storage"] == "video"}))
    result = AnnotateResult(output_root=out_root, staging_dir=plan.staging_dir,
                            episodes=[int(e) for e in episodes["episode_index"]])
    rows = episodes.to_list()
    staging = Staging(plan.staging_dir, inputs=episodes_inputs(rows, source.root, plan.source_identity))
    staging.save_inputs()
    return PreparedRun(plan, episodes, rows, staging, result, lock)


def run_quality_checks(run: PreparedRun, provider: FrameProvider | None = None) -> set[int]:
    """The quality checks of every engine, before any model call: fill `run.result.quality` and, under
    --quality.skip_bad_episodes, `run.result.skipped` (skipped, not failed); return the episodes to leave out.

    Without a `provider` one is made here for the checks' few frames and closed again.
    """
    config = run.plan.config
    if not config.quality.enabled:
        return set()
    from ...quality import check_episodes

    owned = provider is None
    if owned:
        from ...frames import make_frame_provider

        provider = make_frame_provider(run.rows, video_backend=config.video_backend, cache_mb=0,
                                       video_access=run.plan.video_access)
    try:
        run.result.quality = check_episodes(run.rows, provider, config.quality, signal=config.motion.signal,
                                            gripper_index=config.motion.gripper_index)
    finally:
        if owned and hasattr(provider, "close"):
            provider.close()
    if config.quality.skip_bad_episodes and run.result.quality:
        run.result.skipped = {e: f"--quality.skip_bad_episodes: {f[0]}" for e, f in run.result.quality.items()}
    return set(run.result.skipped)
