"""After the episodes: what each module says about the run, the provenance, one validated write, the push."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from ... import __version__
from .output import assemble_rows, write_run
from .plan import RunPlan
from .prepare import PreparedRun
from .publish import complete_videos, publish
from .result import AnnotateResult

if TYPE_CHECKING:
    from ...language import LanguageRow
    from ...vlm import VlmConfig


def finish_run(run: PreparedRun, vlm_config: VlmConfig, started: float,
               per_episode: dict[int, list[LanguageRow]] | None = None) -> AnnotateResult:
    """Validate and write every finished episode's rows once (default: assembled from staging), then push."""
    plan, result, staging = run.plan, run.result, run.staging
    modules, keys = plan.modules, plan.keys
    if per_episode is None:
        finished = [e for e in result.episodes if e not in result.failures and e not in result.skipped]
        per_episode = {e: assemble_rows(staging.current_rows(e, plan.current_keys), modules.all) for e in finished}
    for m in modules.enabled:  # what each module has to say about the run (plan: grounding)
        notes, reports = m.summarize({e: getattr(staging.lookup(e, m.name, keys[m.name]), "info", None)
                                      for e in per_episode})
        result.notes.extend(notes)
        result.reports.update(reports)
    result.rows_per_style = dict(Counter(str(r.style or "speech") for rs in per_episode.values() for r in rs))
    result.provenance = provenance(plan, vlm_config, result)
    if plan.writes_dataset:  # a shard job leaves writing to `merge`
        assert plan.source is not None
        if per_episode and (plan.push is None or plan.push.mode != "pull_request"):
            result.notes.extend(complete_videos(plan.source))  # a new root is complete: every video, whole
        result.validation, counts, result.provenance = write_run(plan, per_episode, result.provenance, result.failures)
        result.rows_kept, result.rows_replaced = dict(counts.kept), dict(counts.replaced)
        result.rows_added = dict(counts.added)
    if plan.push is not None and getattr(result.validation, "ok", True):
        result.push = publish(plan, result)
    result.seconds = time.perf_counter() - started
    from ...dataset.remote import log_summary

    log_summary()  # the Hub video reads of this process (bytes, requests, share of the files)
    return result


def provenance(plan: RunPlan, vlm_config: VlmConfig | None, result: AnnotateResult) -> dict[str, Any]:
    """What produced these annotations: for the dataset card and for anyone reading the output later."""
    modules, source = plan.modules, plan.source
    record = {
        "package": "lerobot_keyframes",
        "package_version": __version__,
        "model_id": getattr(vlm_config, "model_id", None),
        "model_revision": getattr(vlm_config, "revision", None),
        "backend": getattr(vlm_config, "backend", None),
        "sampling": {k: getattr(vlm_config, k, None) for k in ("temperature", "top_p", "seed", "max_new_tokens")},
        "prompt_hashes": {k: v for m in modules.all for k, v in m.prompt_hashes().items()},
        "module_keys": plan.keys,
        "modules": modules.enabled_names,
        "episodes": len(result.episodes) - len(result.failures) - len(result.skipped),
        "skipped_episodes": {str(e): why for e, why in sorted(result.skipped.items())},
        "failed_episodes": {str(e): reason[:300] for e, reason in sorted(result.failures.items())},
        "rows_per_style": result.rows_per_style,
        "quality": {str(e): [f.as_dict() for f in fs] for e, fs in sorted(result.quality.items())},
        "notes": list(result.notes),
        **result.reports,
        "seed": plan.config.seed,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # `push` reads these back so it never writes the source without --allow_source_overwrite
        "source_repo_id": getattr(source, "repo_id", None),
        "source_revision": getattr(source, "revision", None),
    }
    if getattr(source, "repo_id", None) is not None:  # the commit the videos are read at (a streamed source's review)
        record["source_commit"] = plan.source_commit
    return record
