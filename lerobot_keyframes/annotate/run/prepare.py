"""Before the first episode: the source resolved and checked, the episode table read, staging opened and locked.

Every executor starts here (`prepare_run`) and runs the quality checks the same way (`run_quality_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import AnnotateConfig
from .keys import episodes_inputs, source_identity
from .output import check_output_source
from .plan import default_output_root, default_staging_dir
from .preflight import preflight
from .result import AnnotateResult
from .staging import RunLock, Staging

if TYPE_CHECKING:
    from datasets import Dataset

    from ...dataset.source import ResolvedSource
    from ...frames import FrameProvider
    from ...vlm import VlmConfig


@dataclass
class PreparedRun:
    """What every engine needs before the first episode: the source, its episode rows, output and staging."""

    source: ResolvedSource
    episodes: Dataset  # the episode table, what the Annotator maps over
    rows: list[dict[str, Any]]  # the same table as Python rows (read once)
    out_root: Path
    staging: Staging
    result: AnnotateResult
    lock: RunLock | None = None


def prepare_run(config: AnnotateConfig, camera_key: str | None = None,
                vlm_config: VlmConfig | None = None) -> PreparedRun:
    """Resolve the source, read the episode table, fetch the videos needed and open staging.

    A `camera_key` (`--vlm.camera_key`) that is not a camera of the dataset is an error here, before any
    work, never a silent switch to another camera. `vlm_config`, when given, is checked too (extras, model)."""
    from ...dataset.source import resolve_source

    source = resolve_source(config.root or config.repo_id, revision=config.revision)
    preflight(config, vlm_config, source)  # locations, Hub target, privacy, extras: before any decode or model call
    out_root = default_output_root(config, source.root)
    staging_dir = Path(config.staging_dir) if config.staging_dir else default_staging_dir(out_root)
    lock = RunLock(out_root, staging_dir).acquire()  # one run per output: a second one fails here, at once
    try:
        return _prepare_locked(config, camera_key, source, out_root, staging_dir, lock)
    except BaseException:
        lock.release()
        raise


def _prepare_locked(config: AnnotateConfig, camera_key: str | None, source: ResolvedSource, out_root: Path, staging_dir: Path,
                    lock: RunLock) -> PreparedRun:
    from ...dataset import load_episodes
    from ...dataset.episodes import require_episodes
    from ...language.writer import recover_interrupted_write

    check_output_source(out_root, config)  # an --out holding another dataset's annotated copy: refused now
    for root in {source.root, out_root} if source.repo_id is None else {out_root}:
        if root.is_dir():
            recover_interrupted_write(root)  # an in-place write killed midway is finished or undone first
    episodes = load_episodes(source.root, episodes=config.only_episodes)
    require_episodes(len(episodes), source.root, config.only_episodes, "--only_episodes")
    cameras = sorted({c["key"] for r in episodes for c in r["cameras"]})
    if camera_key and camera_key not in cameras:
        raise ValueError(f"--vlm.camera_key={camera_key!r} is not a camera of {source.root}; it has {cameras}")
    if source.repo_id is not None and config.video_access == "download":  # else read by byte range when decoded
        source.fetch_files(sorted({c["path"] for r in episodes for c in r["cameras"] if c["storage"] == "video"}))
    result = AnnotateResult(output_root=out_root, staging_dir=staging_dir,
                            episodes=[int(e) for e in episodes["episode_index"]])
    rows = episodes.to_list()
    staging = Staging(staging_dir, inputs=episodes_inputs(rows, source.root, source_identity(config)))
    staging.save_inputs()
    return PreparedRun(source, episodes, rows, out_root, staging, result, lock)


def run_quality_checks(run: PreparedRun, config: AnnotateConfig, provider: FrameProvider | None = None) -> set[int]:
    """The quality checks of every engine, before any model call: fill `run.result.quality` and, under
    --quality.skip_bad_episodes, `run.result.skipped` (skipped, not failed); return the episodes to leave out.

    Without a `provider` one is made here for the checks' few frames and closed again.
    """
    if not config.quality.enabled:
        return set()
    from ...quality import check_episodes

    owned = provider is None
    if owned:
        from ...frames import make_frame_provider

        provider = make_frame_provider(run.rows, video_backend=config.video_backend, cache_mb=0,
                                       video_access=config.video_access)
    try:
        run.result.quality = check_episodes(run.rows, provider, config.quality, signal=config.motion.signal,
                                            gripper_index=config.motion.gripper_index)
    finally:
        if owned and hasattr(provider, "close"):
            provider.close()
    if config.quality.skip_bad_episodes and run.result.quality:
        run.result.skipped = {e: f"--quality.skip_bad_episodes: {f[0]}" for e, f in run.result.quality.items()}
    return set(run.result.skipped)
