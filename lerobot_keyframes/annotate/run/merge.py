"""The writing side of a sharded run's merge: the shards' staged rows become the annotated dataset exactly as a
single-machine run would write them — same assembly, same validator, same writer (`output.write_run`), with the
modules and writer settings the shards recorded (`plan.RunPlan.record`, carried by each shard's marker).

Collecting the shards from their branches is `hub.merge`'s; the `merge` command that drives both is the HF Jobs
executor's (`executors.jobs.merge.run_merge`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import AnnotateConfig, VqaConfig
from ..modules.registry import load_modules
from .output import assemble_rows, write_run
from .plan import RUN_RECORD_VERSION, RunPlan, plan_run
from .staging import Staging

if TYPE_CHECKING:
    from ...dataset.source import ResolvedSource
    from ...language import ValidationReport

logger = logging.getLogger(__name__)


def check_one_key_per_module(staging: Staging, episodes: list[int]) -> None:
    """Refuse shards whose staging of one module was made under different keys (another config, model, prompts
    or source): one dataset, one provenance."""
    from collections import defaultdict

    seen: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for e in episodes:
        for module in staging.rows(e):  # every module the shards staged, a user's own included
            staged = staging.read(e, module)
            if staged is not None:
                seen[module][staged.key].append(e)
    for module, by_key in seen.items():
        if len(by_key) > 1:
            groups = sorted(by_key.items(), key=lambda kv: -len(kv[1]))
            detail = "; ".join(f"key {k}: episodes {eps[:10]}" for k, eps in groups[:3])
            raise ValueError(
                f"the shards staged module {module!r} under {len(by_key)} different keys (another config, model, "
                f"prompts or source): {detail}. Re-run the odd shards with the same flags; nothing was written."
            )


def agreed_record(records: Mapping[str, Mapping[str, Any] | None]) -> Mapping[str, Any] | None:
    """The run record every shard's marker carries (branch -> record; `RunPlan.record`), or None when none has one
    (shards of an older version). Shards that ran different modules or writer settings are refused."""
    found = {branch: dict(r) for branch, r in records.items() if r is not None}
    distinct = {json.dumps(r, sort_keys=True) for r in found.values()}
    if len(distinct) > 1:
        branches = sorted(found)
        raise ValueError(f"the shards ran with different modules or settings ({branches[0]} and "
                         f"{next(b for b in branches if found[b] != found[branches[0]])} differ); re-run the odd shards "
                         "with the same flags; nothing was written")
    record = next(iter(found.values()), None)
    if record is not None and record.get("version") != RUN_RECORD_VERSION:
        raise ValueError(f"the shards' run record is version {record.get('version')}; this lerobot_keyframes reads "
                         f"version {RUN_RECORD_VERSION}: merge with the version the shards ran")
    return record


def merge_config(record: Mapping[str, Any] | None, *, source: ResolvedSource, out: Path,
                 skip_validation: bool = False) -> AnnotateConfig:
    """The `AnnotateConfig` a merge writes with: the shards' modules (a user's own included, so the rows of the styles
    it owns are replaced, not kept beside the new ones), those that ran enabled, and the writer settings they ran with
    (`--replace_existing`, the VQA camera rules). Without a record: the defaults (what older shards ran with)."""
    where = {"repo_id": source.repo_id} if source.repo_id is not None else {"root": source.root}
    if record is None:
        return AnnotateConfig(**where, out=out, skip_validation=skip_validation)
    enabled = set(record["enabled"])
    own: dict[str, Any] = {}
    module_configs: dict[str, Any] = {}
    for module in load_modules(tuple(record["modules"])):
        default = module.config_class()
        if not any(f.name == "enabled" for f in dataclasses.fields(default)):
            continue  # always enabled
        switched = dataclasses.replace(default, enabled=module.name in enabled)
        (own if module.name in {f.name for f in dataclasses.fields(AnnotateConfig)} else module_configs)[
            module.name] = switched
    own["vqa"] = dataclasses.replace(own.get("vqa", VqaConfig()), **record["vqa"])
    return AnnotateConfig(**where, out=out, skip_validation=skip_validation, modules=tuple(record["modules"]),
                          module_configs=module_configs, replace_existing=bool(record["replace_existing"]), **own)


def merge_plan(source: ResolvedSource, out: Path, record: Mapping[str, Any] | None = None, *,
               skip_validation: bool = False) -> RunPlan:
    """The plan of a merge's write: the source, the output root `out`, the shards' modules (`merge_config`)."""
    plan = plan_run(merge_config(record, source=source, out=out, skip_validation=skip_validation), None, source)
    if record is not None and sorted(plan.modules.enabled_names) != sorted(record["enabled"]):
        raise ValueError(f"the shards ran modules {sorted(record['enabled'])}, but here they would be "
                         f"{plan.modules.enabled_names}; nothing was written")
    return plan


def write_from_staging(plan: RunPlan, staging_dir: Path, episodes: list[int], provenance: dict[str, Any]) -> ValidationReport:
    """Assemble and write the staged rows of `episodes` to the plan's output root (validated, existing rows of the
    styles the shards' modules do not own kept); returns the validation report."""
    staging = Staging(staging_dir)
    check_one_key_per_module(staging, episodes)
    per_episode = {e: assemble_rows(staging.rows(e), plan.modules.all) for e in episodes}
    report, _, written = write_run(plan, per_episode, provenance)
    provenance.update(written)
    return report
