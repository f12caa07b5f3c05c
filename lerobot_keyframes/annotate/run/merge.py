"""The writing side of a sharded run's merge: the shards' staged rows become the annotated dataset exactly as a
single-machine run would write them — same assembly, same validator, same writer (`output.write_run`).

Collecting the shards from their branches is `hub.merge`'s; the `merge` command that drives both is the HF Jobs
executor's (`executors.jobs.merge.run_merge`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import AnnotateConfig
from .output import assemble_rows, write_run
from .staging import Staging

if TYPE_CHECKING:
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


def write_from_staging(
    source_root: Path, out: Path, staging_dir: Path, episodes: list[int], config: AnnotateConfig,
    provenance: dict[str, Any],
) -> ValidationReport:
    """Assemble and write the staged rows of `episodes` (validated, existing rows of other styles kept);
    returns the validation report."""
    staging = Staging(staging_dir)
    check_one_key_per_module(staging, episodes)
    per_episode = {e: assemble_rows(staging.rows(e)) for e in episodes}
    report, _, written = write_run(source_root, out, per_episode, config, provenance)
    provenance.update(written)
    return report
