"""The annotation run on Ray Data: the same modules, staging and output as `run_annotation`, on a cluster.

The episode table becomes a Ray dataset whose blocks hold frame-balanced groups of episodes. CPU workers
run the keyframe stage (`AnnotationKeyframes`: the frames the modules declared, per camera); an actor
pool holds the VLM (one VLM per actor, `num_gpus` per actor, in-process engines behind a
`BatchingScheduler`) and runs the episodes through `engine.annotate_rows` — the same step as
`Annotator` and the local run, with the same `Staging` and keys. A frame that was not prefetched
(interjection windows, a failed prefetch) is decoded in the actor, so results never depend on what was
prefetched. Staged modules are reused on a re-run (resume) and when Ray retries
a task after an actor died (staging writes are atomic and idempotent). The driver writes what the
actors staged into its own staging too (for clusters without a shared filesystem), then assembles,
validates and writes the dataset once, exactly like the local engine.

Ray is imported only here, and only when this engine runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ...vlm.families import detect_family
from ..config import AnnotateConfig
from ..context import AnnotationError
from ..engine import EpisodeOutcome, annotate_rows, episodes_in_flight
from ..run.finish import finish_run
from ..run.plan import RunPlan
from ..run.prepare import PreparedRun, prepare_run, run_quality_checks
from ..run.result import AnnotateResult
from ..run.staging import Staging
from .jobs.shards import plan_shards

if TYPE_CHECKING:
    from ...vlm import VlmBackend, VlmConfig

logger = logging.getLogger(__name__)

INSTALL_COMMAND = "pip install 'lerobot_keyframes[ray]'"


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


# -- the two stages ---------------------------------------------------------------------------------
def prefetch_requests(row: dict[str, Any], config: AnnotateConfig,
                      vlm_config: VlmConfig) -> list[tuple[str, tuple[float, ...]]]:
    """(camera, exact times) the modules declared for this episode: what the CPU stage decodes."""
    from ..keyframes import annotation_policies

    policies = annotation_policies(row, config, vlm_config.camera_key)
    return [(cam, tuple(float(t) for t in policy.timestamps(row))) for cam, policy in policies.items()]


def decode_batch(batch: dict[str, Any], plan: RunPlan, vlm_config: VlmConfig) -> dict[str, Any]:
    """CPU stage (`map_batches`): the keyframe stage (`AnnotationKeyframes`) of every episode of the batch.

    The episode rows travel on with their keyframe columns. A failed decode is left out: the actor
    decodes it again and reports the error like the local engine.
    """
    import numpy as np

    from ..keyframes import AnnotationKeyframes

    rows = [pickle.loads(blob) for blob in batch["episode"]]
    cameras = tuple(dict.fromkeys(k for r in rows for k in r["camera_keys"]))
    out = []
    if cameras:
        stage = AnnotationKeyframes(policy="uniform:1", cameras=cameras, annotate=plan.config,
                                    camera_key=vlm_config.camera_key, video_backend=plan.config.video_backend,
                                    video_access=plan.video_access)
    for row in rows:
        if cameras:
            try:
                row = {**row, **stage.process_episode(row)}
            except Exception as exc:  # reported by the actor, with the module that needs the frames
                logger.debug("keyframes of episode %s failed: %s", row["episode_index"], exc)
        out.append(pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL))
    return {**batch, "episode": np.array(out, dtype=object)}


class AnnotateEpisodes:
    """VLM stage (an actor of the pool): one VLM for the actor's lifetime, the batch's episodes in flight."""

    def __init__(self, plan: RunPlan, vlm_config: VlmConfig,
                 vlm_factory: Callable[[], VlmBackend] | None = None) -> None:
        from ...vlm.batching import wrap_in_process

        self.plan = plan
        self.vlm_config = vlm_config
        self.staging = Staging(plan.staging_dir)  # the episode inputs: those the driver saved (`save_inputs`)
        self.family = detect_family(vlm_config.model_id)
        self.loop = asyncio.new_event_loop()  # one loop per actor: async clients stay bound to it
        vlm: VlmBackend | None = None
        if vlm_factory is not None:
            vlm = vlm_factory()
        elif plan.modules.asks_model:
            from ...vlm import make_backend

            vlm = make_backend(vlm_config)
        self.vlm = wrap_in_process(vlm)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from ...frames import make_frame_provider

        rows = [pickle.loads(blob) for blob in batch["episode"]]
        config = self.plan.config
        provider = make_frame_provider(rows, video_backend=config.video_backend, cache_mb=config.frame_cache_mb,
                                       video_access=self.plan.video_access)
        try:
            outcomes = self.loop.run_until_complete(annotate_rows(
                rows, plan=self.plan, vlm=self.vlm, provider=provider, staging=self.staging,
                model_family=self.family))
        finally:
            provider.close()
        return {"episode_index": np.array([o.episode_index for o in outcomes], dtype=np.int64),
                "outcome": np.array([pickle.dumps(o) for o in outcomes], dtype=object)}


# -- the driver --------------------------------------------------------------------------------------
def _fully_staged(staging: Staging, e: int, current: dict[str, str]) -> bool:
    return bool(current) and all(staging.lookup(e, m, key) is not None for m, key in current.items())


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
    vlm_config: VlmConfig,
    *,
    address: str | None = None,
    num_vlm_actors: int | None = None,
    num_gpus_per_actor: float | None = None,
    cpu_workers: int | None = None,
    num_cpus_per_actor: float | None = None,
    vlm_factory: Callable[[], VlmBackend] | None = None,
) -> AnnotateResult:
    """Annotate a dataset on Ray Data; same staging, resume and output as `run_annotation`.

    Keyword arguments left at None come from `config.ray`. Called inside a script that already ran
    `ray.init(...)`, it uses that Ray; otherwise it joins `address` or starts a local instance (and shuts
    it down when done). `vlm_factory` (picklable, no arguments) builds each actor's VLM instead of
    `make_backend(vlm_config)`, e.g. for tests. The staging directory must be reachable from the driver; actors
    use it too when the filesystem is shared, otherwise their staged modules come back to the driver.
    """
    import_ray()
    given = {"address": address, "num_vlm_actors": num_vlm_actors, "num_gpus_per_actor": num_gpus_per_actor,
             "cpu_workers": cpu_workers, "num_cpus_per_actor": num_cpus_per_actor}
    config = dataclasses.replace(config, ray=dataclasses.replace(
        config.ray, **{k: v for k, v in given.items() if v is not None}))
    started = time.perf_counter()
    run = prepare_run(config, vlm_config, check_backend=vlm_factory is None)
    try:
        return run_prepared_on_ray(run, vlm_config, started, vlm_factory=vlm_factory)
    finally:
        if run.lock is not None:
            run.lock.release()  # also when the run raised


def run_prepared_on_ray(run: PreparedRun, vlm_config: VlmConfig, started: float, *,
                        vlm_factory: Callable[[], VlmBackend] | None = None) -> AnnotateResult:
    """The episodes of a prepared run (`run.prepare.prepare_run`) on Ray Data, with the cluster of its
    `config.ray`, then the run's one write (`run.finish.finish_run`); the caller releases the run's lock."""
    ray = import_ray()
    plan = run.plan
    rc = plan.config.ray
    address, num_gpus_per_actor, num_cpus_per_actor = rc.address, rc.num_gpus_per_actor, rc.num_cpus_per_actor
    num_vlm_actors, cpu_workers = max(1, rc.num_vlm_actors), max(1, rc.cpu_workers)

    staging, result = run.staging, run.result
    current = plan.current_keys
    skipped = run_quality_checks(run)  # on the driver, before any decode or model call on Ray

    todo = []
    for row in run.rows:
        e = int(row["episode_index"])
        if e in skipped:
            continue
        if not plan.config.force and _fully_staged(staging, e, current):
            for m in current:
                result.modules_reused[m] += 1
        else:
            todo.append(row)
    logger.info("ray engine: %d episodes to annotate, %d already staged, %d skipped", len(todo),
                len(run.rows) - len(todo) - len(skipped), len(skipped))

    if todo:
        started_ray = _start_ray(ray, address)
        try:
            for outcome in _stream(ray, todo, plan, vlm_config, vlm_factory, num_vlm_actors, num_gpus_per_actor,
                                   num_cpus_per_actor, cpu_workers):
                _collect(outcome, staging, result, plan.config)
        finally:
            if started_ray:
                ray.shutdown()
    return finish_run(run, vlm_config, started)


def _stream(ray: Any, rows: list[dict[str, Any]], plan: RunPlan, vlm_config: VlmConfig,
            vlm_factory: Callable[[], VlmBackend] | None, num_vlm_actors: int, num_gpus_per_actor: float,
            num_cpus_per_actor: float, cpu_workers: int) -> Iterator[EpisodeOutcome]:
    """Build the Ray Data pipeline and yield each episode's outcome as it finishes."""
    import pyarrow as pa

    by_index = {int(r["episode_index"]): r for r in rows}
    lengths = {e: int(r.get("length") or len(r.get("timestamps") or ())) for e, r in by_index.items()}
    blocks = plan_shards(lengths, max(1, min(len(rows), 4 * cpu_workers)))  # frame-balanced blocks
    tables = [
        pa.table({"episode_index": list(b.episodes), "num_frames": [lengths[e] for e in b.episodes],
                  "episode": [pickle.dumps(by_index[e], protocol=pickle.HIGHEST_PROTOCOL) for e in b.episodes]})
        for b in blocks
    ]
    ds = ray.data.from_arrow(tables)
    # the actors' cwd is not the driver's: they get the staging folder as an absolute path
    shipped = dataclasses.replace(plan, staging_dir=plan.staging_dir.absolute())
    ds = ds.map_batches(decode_batch, fn_kwargs={"plan": shipped, "vlm_config": vlm_config}, batch_size=None,
                        batch_format="numpy", compute=ray.data.TaskPoolStrategy(size=cpu_workers), num_cpus=1)
    ds = ds.map_batches(
        AnnotateEpisodes,
        fn_constructor_args=(shipped, vlm_config, vlm_factory),
        batch_size=episodes_in_flight(plan.config, None),
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


__all__ = ["AnnotateEpisodes", "EpisodeOutcome", "RayMissingError", "decode_batch", "import_ray",
           "prefetch_requests", "run_annotation_ray", "run_prepared_on_ray"]

