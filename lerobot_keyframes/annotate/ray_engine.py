"""The annotation run on Ray Data: the same modules, staging and output as `run_annotation`, on a cluster.

The episode table becomes a Ray dataset whose blocks hold frame-balanced groups of episodes. CPU workers
decode the frames the plan and VQA modules will ask for (the times are a function of the config alone);
an actor pool holds the VLM (one backend per actor, `num_gpus` per actor) and runs each episode through
`plan → interjections → vqa (→ motion)` with the same `Staging` and keys as the local pipeline. A frame
that was not prefetched (interjection windows, a failed prefetch) is decoded in the actor, so results
never depend on what was prefetched. Staged modules are reused on a re-run (resume) and when Ray retries
a task after an actor died (staging writes are atomic and idempotent). The driver writes what the
actors staged into its own staging too (for clusters without a shared filesystem), then assembles,
validates and writes the dataset once, exactly like the local engine.

Ray is imported only here, and only when this engine runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import AnnotateConfig
from .context import AnnotationError, CallStats, EpisodeContext
from .pipeline import MODULES, AnnotateResult, _annotate_episode, finish_run, module_keys, prepare_run
from .staging import StagedModule, Staging

logger = logging.getLogger(__name__)

INSTALL_COMMAND = "pip install 'lerobot_keyframes[ray]'"
VLM_MODULES = ("plan", "interjections", "vqa")


class RayMissingError(ImportError):
    """`--executor.engine=ray` without the `ray` extra."""

    def __init__(self, cause: BaseException | None = None) -> None:
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        self.install_command = INSTALL_COMMAND
        super().__init__(f"--executor.engine=ray needs Ray Data, which is not importable{detail}. "
                         f"Install it with: {INSTALL_COMMAND}")


def import_ray() -> Any:
    """`ray` with `ray.data` loaded, or a RayMissingError naming the install command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayMissingError(exc) from exc
    return ray


# -- what travels between the stages -------------------------------------------------------------------
@dataclass
class EpisodeOutcome:
    """One episode's result from a VLM actor: what ran, what was reused, calls, staged modules, error."""

    episode_index: int
    error: str | None = None
    error_module: str | None = None
    modules_run: dict[str, int] = field(default_factory=dict)
    modules_reused: dict[str, int] = field(default_factory=dict)
    stats: CallStats = field(default_factory=CallStats)
    staged: list[StagedModule] = field(default_factory=list)
    prefetch_hits: int = 0  # decodes served from the CPU stage
    prefetch_misses: int = 0  # decodes done in the actor (interjection windows, failed prefetches)


class _CameraOnly:
    """A stand-in backend for `EpisodeContext.default_camera` on CPU workers (no model there)."""

    def __init__(self, camera_key: str | None) -> None:
        self.camera_key = camera_key


def prefetch_requests(row: dict[str, Any], config: AnnotateConfig, vlm: Any) -> list[tuple[str, tuple[float, ...]]]:
    """(camera, exact times) the plan and VQA modules will decode for this episode, computed like they do."""
    from .vqa import ticks

    ctx = EpisodeContext(episode=row, config=config, provider=None, backend=_CameraOnly(getattr(vlm, "camera_key", None)),
                         requests=None)  # type: ignore[arg-type]
    out: list[tuple[str, tuple[float, ...]]] = []
    try:
        if config.plan.enabled:
            indices = ctx.frames_at_hz(config.plan.frames_per_second)
            if config.plan.keyframe_policy == "motion+fps":
                from ..frames.policies import motion

                indices = sorted(set(indices) | {int(i) for i in motion().frame_indices(row)})
            out.append((ctx.default_camera, tuple(ctx.frame_time(i) for i in indices)))
        if config.vqa.enabled:
            by_camera: dict[str, list[int]] = {}
            for index, cam in ticks(ctx):
                by_camera.setdefault(cam, []).append(index)
            out.extend((cam, tuple(ctx.frame_time(i) for i in idx)) for cam, idx in by_camera.items())
    except AnnotationError:
        return []  # e.g. no camera: the actor reports it with the module that needs it
    return out


class PrefetchedProvider:
    """Serves frames decoded on CPU workers; anything else is decoded here by a lazily built provider."""

    def __init__(self, prefetched: dict[tuple[str, tuple[float, ...]], Any], make_fallback: Callable[[], Any]) -> None:
        self.prefetched = prefetched
        self._make_fallback = make_fallback
        self._fallback: Any = None
        self.hits = 0
        self.misses = 0

    def frames_at(self, episode: Any, timestamps: Sequence[float], camera: str | None = None) -> Any:
        hit = self.prefetched.get((camera, tuple(float(t) for t in timestamps)))
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        if self._fallback is None:
            self._fallback = self._make_fallback()
        return self._fallback.frames_at(episode, timestamps, camera)

    def close(self) -> None:
        if self._fallback is not None and hasattr(self._fallback, "close"):
            self._fallback.close()


def decode_batch(batch: dict[str, Any], config: AnnotateConfig, vlm: Any) -> dict[str, Any]:
    """CPU stage (`map_batches`): decode the frames every episode of the batch will need.

    A failed decode is left out: the actor decodes it again and reports the error like the local engine.
    """
    import numpy as np

    from ..frames import make_frame_provider

    rows = [pickle.loads(blob) for blob in batch["episode"]]
    provider = make_frame_provider(rows, backend=config.frame_backend)
    frames = []
    try:
        for row in rows:
            got = {}
            for camera, times in prefetch_requests(row, config, vlm):
                try:
                    got[(camera, times)] = provider.frames_at(row, list(times), camera)
                except Exception as exc:  # reported by the actor, with the module that needs the frames
                    logger.debug("prefetch of episode %s camera %s failed: %s", row["episode_index"], camera, exc)
            frames.append(pickle.dumps(got, protocol=pickle.HIGHEST_PROTOCOL))
    finally:
        if hasattr(provider, "close"):
            provider.close()
    return {**batch, "frames": np.array(frames, dtype=object)}


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


class AnnotateEpisodes:
    """VLM stage (an actor of the pool): one backend for the actor's lifetime, episodes of a batch concurrently."""

    def __init__(self, config: AnnotateConfig, vlm: Any, keys: dict[str, str], staging_dir: str,
                 backend_factory: Callable[[], Any] | None = None) -> None:
        from .vqa import detect_family

        self.config = config
        self.vlm = vlm
        self.keys = keys
        self.staging = Staging(staging_dir)
        self.family = detect_family(getattr(vlm, "model_id", None))
        self.loop = asyncio.new_event_loop()  # one loop per actor: async clients stay bound to it
        self.backend: Any = None
        if backend_factory is not None:
            self.backend = backend_factory()
        elif any(getattr(config, m).enabled for m in VLM_MODULES):
            from ..vlm import make_backend

            self.backend = make_backend(vlm)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        rows = [pickle.loads(blob) for blob in batch["episode"]]
        prefetched = [pickle.loads(blob) for blob in batch["frames"]]
        outcomes = self.loop.run_until_complete(self._all(rows, prefetched))
        return {"episode_index": np.array([o.episode_index for o in outcomes], dtype=np.int64),
                "outcome": np.array([pickle.dumps(o) for o in outcomes], dtype=object)}

    async def _all(self, rows: list[dict[str, Any]], prefetched: list[dict[Any, Any]]) -> list[EpisodeOutcome]:
        requests = asyncio.Semaphore(max(1, self.config.executor.max_requests_in_flight))
        return list(await asyncio.gather(*(self._one(r, p, requests) for r, p in zip(rows, prefetched))))

    async def _one(self, row: dict[str, Any], prefetched: dict[Any, Any], requests: asyncio.Semaphore) -> EpisodeOutcome:
        from ..frames import make_frame_provider

        e = int(row["episode_index"])
        provider = PrefetchedProvider(prefetched, lambda: make_frame_provider(
            [row], backend=self.config.frame_backend, cache_bytes=self.config.frame_cache_mb << 20))
        local = AnnotateResult(output_root=Path("."), staging_dir=self.staging.dir, episodes=[e])
        ctx = EpisodeContext(episode=row, config=self.config, provider=provider, backend=self.backend,
                             requests=requests, stats=local.stats, model_family=self.family)
        outcome = EpisodeOutcome(e)
        try:
            await _annotate_episode(ctx, self.staging, self.keys, local, {m: _NoBar() for m in MODULES})
        except AnnotationError as exc:
            self.staging.write_error(e, exc.module, self.keys.get(exc.module, ""), str(exc))
            outcome.error, outcome.error_module = str(exc), exc.module
        finally:
            provider.close()
        outcome.modules_run = dict(local.modules_run)
        outcome.modules_reused = dict(local.modules_reused)
        outcome.stats = local.stats
        outcome.prefetch_hits, outcome.prefetch_misses = provider.hits, provider.misses
        outcome.staged = [s for m in MODULES if (s := self.staging.lookup(e, m, self.keys[m])) is not None]
        return outcome


# -- the driver --------------------------------------------------------------------------------------
def _fully_staged(staging: Staging, e: int, enabled: list[str], keys: dict[str, str]) -> bool:
    return bool(enabled) and all(staging.lookup(e, m, keys[m]) is not None for m in enabled)


def _start_ray(ray: Any, address: str | None) -> bool:
    """Join the running Ray (the user's own script), a cluster (`address`), or start a local one.
    Returns True when this call started Ray (and so shuts it down at the end)."""
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(include_dashboard=False, _node_ip_address="127.0.0.1")  # this machine only
    return True


def run_annotation_ray(
    config: AnnotateConfig,
    vlm: Any,
    *,
    address: str | None = None,
    num_vlm_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    cpu_workers: int | None = None,
    num_cpus_per_actor: float | None = None,
    backend_factory: Callable[[], Any] | None = None,
) -> AnnotateResult:
    """Annotate a dataset on Ray Data; same staging, resume and output as `run_annotation`.

    Keyword arguments left at None come from `config.ray`. Called inside a script that already ran
    `ray.init(...)`, it uses that Ray; otherwise it joins `address` or starts a local instance (and shuts
    it down when done). `backend_factory` (picklable, no arguments) builds each actor's backend instead of
    `make_backend(vlm)`, e.g. for tests. The staging directory must be reachable from the driver; actors
    use it too when the filesystem is shared, otherwise their staged modules come back to the driver.
    """
    ray = import_ray()
    rc = config.ray
    address = address if address is not None else rc.address
    num_vlm_actors = max(1, num_vlm_actors if num_vlm_actors is not None else rc.num_vlm_actors)
    num_gpus_per_actor = num_gpus_per_actor if num_gpus_per_actor is not None else rc.num_gpus_per_actor
    cpu_workers = max(1, cpu_workers if cpu_workers is not None else rc.cpu_workers)
    num_cpus_per_actor = num_cpus_per_actor if num_cpus_per_actor is not None else rc.num_cpus_per_actor

    started = time.perf_counter()
    run = prepare_run(config, getattr(vlm, "camera_key", None), vlm=vlm if backend_factory is None else None)
    staging, result = run.staging, run.result
    keys = module_keys(config, vlm)
    enabled = [m for m in MODULES if getattr(config, m).enabled]

    todo = []
    for row in run.rows:
        e = int(row["episode_index"])
        if not config.force and _fully_staged(staging, e, enabled, keys):
            for m in enabled:
                result.modules_reused[m] += 1
        else:
            todo.append(row)
    logger.info("ray engine: %d episodes to annotate, %d already staged", len(todo), len(run.rows) - len(todo))

    if todo:
        started_ray = _start_ray(ray, address)
        try:
            for outcome in _stream(ray, todo, config, vlm, keys, staging, backend_factory, num_vlm_actors,
                                   num_gpus_per_actor, num_cpus_per_actor, cpu_workers):
                _collect(outcome, staging, result, config)
        finally:
            if started_ray:
                ray.shutdown()
    return finish_run(run, config, vlm, keys, started)


def _stream(ray: Any, rows: list[dict[str, Any]], config: AnnotateConfig, vlm: Any, keys: dict[str, str],
            staging: Staging, backend_factory: Callable[[], Any] | None, num_vlm_actors: int,
            num_gpus_per_actor: float, num_cpus_per_actor: float, cpu_workers: int):
    """Build the Ray Data pipeline and yield each episode's outcome as it finishes."""
    import pyarrow as pa

    from ..hub.jobs import plan_shards

    by_index = {int(r["episode_index"]): r for r in rows}
    lengths = {e: int(r.get("length") or len(r.get("timestamps") or ())) for e, r in by_index.items()}
    blocks = plan_shards(lengths, max(1, min(len(rows), 4 * cpu_workers)))  # frame-balanced blocks
    tables = [
        pa.table({"episode_index": list(b.episodes), "num_frames": [lengths[e] for e in b.episodes],
                  "episode": [pickle.dumps(by_index[e], protocol=pickle.HIGHEST_PROTOCOL) for e in b.episodes]})
        for b in blocks
    ]
    ds = ray.data.from_arrow(tables)
    ds = ds.map_batches(decode_batch, fn_kwargs={"config": config, "vlm": vlm}, batch_size=None,
                        batch_format="numpy", compute=ray.data.TaskPoolStrategy(size=cpu_workers), num_cpus=1)
    ds = ds.map_batches(
        AnnotateEpisodes,
        fn_constructor_args=(config, vlm, keys, str(staging.dir.absolute()), backend_factory),
        batch_size=max(1, config.executor.episode_parallelism),
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=num_vlm_actors),
        num_gpus=num_gpus_per_actor,
        num_cpus=num_cpus_per_actor,
    )
    for row in ds.select_columns(["outcome"]).iter_rows():
        yield pickle.loads(row["outcome"])


def _collect(outcome: EpisodeOutcome, staging: Staging, result: AnnotateResult, config: AnnotateConfig) -> None:
    """Fold an actor's outcome into the run: stage what the driver cannot see yet, count, report errors."""
    e = outcome.episode_index
    for s in outcome.staged:
        if staging.lookup(e, s.module, s.key) is None:  # no shared filesystem: the driver stages it
            staging.write(e, s.module, s.key, s.rows, s.info)
    result.modules_run.update(outcome.modules_run)
    result.modules_reused.update(outcome.modules_reused)
    for name in ("calls", "failures", "prompt_tokens", "completion_tokens"):
        setattr(result.stats, name, getattr(result.stats, name) + getattr(outcome.stats, name))
    if outcome.error is not None:
        result.failures[e] = outcome.error
        module = outcome.error_module or ""
        if staging.read(e, module) is None and not staging.error_path(e, module).exists():
            staging.write_error(e, module, "", outcome.error)
        logger.error("%s", outcome.error)
        if config.on_error == "stop":
            prefix = f"episode {e}, module {module}: "
            message = outcome.error[len(prefix):] if outcome.error.startswith(prefix) else outcome.error
            raise AnnotationError(message, episode_index=e, module=module)


__all__ = ["EpisodeOutcome", "PrefetchedProvider", "RayMissingError", "import_ray", "prefetch_requests",
           "run_annotation_ray"]

