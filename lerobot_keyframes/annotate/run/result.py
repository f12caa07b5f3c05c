"""`AnnotateResult`: what a run did, whichever executor ran it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..context import CallStats

if TYPE_CHECKING:
    from ...hub import PushResult
    from ...language import ValidationReport
    from ...quality import QualityFinding
    from ...vlm.batching import BatchStats


@dataclass
class AnnotateResult:
    """What a run did: where the output is, per-episode failures, rows per style, model calls, time."""

    output_root: Path
    staging_dir: Path
    episodes: list[int]
    failures: dict[int, str] = field(default_factory=dict)
    rows_per_style: dict[str, int] = field(default_factory=dict)
    modules_run: Counter = field(default_factory=Counter)
    modules_reused: Counter = field(default_factory=Counter)
    stats: CallStats = field(default_factory=CallStats)
    seconds: float = 0.0
    validation: ValidationReport | None = None  # None: not validated (a shard job leaves it to `merge`)
    provenance: dict[str, Any] = field(default_factory=dict)
    push: PushResult | str | None = None  # the push, or a shard job's staging commit
    frames: dict[str, int] = field(default_factory=dict)  # decoded / from keyframe columns / shared by modules
    batches: BatchStats | None = None  # BatchStats of an in-process engine: conversations per engine call
    rows_kept: dict[str, int] = field(default_factory=dict)  # existing rows per style the run kept
    rows_replaced: dict[str, int] = field(default_factory=dict)  # existing rows per style it replaced
    rows_added: dict[str, int] = field(default_factory=dict)  # new rows per style it wrote
    quality: dict[int, list[QualityFinding]] = field(default_factory=dict)  # findings per episode (before the run)
    skipped: dict[int, str] = field(default_factory=dict)  # episodes --quality.skip_bad_episodes left out, and why
    notes: list[str] = field(default_factory=list)  # e.g. grounding: which episodes were snapped, and why not
    # provenance entries of the modules (`Module.summarize`; plan: `grounding`, boundaries moved to robot events)
    reports: dict[str, Any] = field(default_factory=dict)

    @property
    def grounding(self) -> dict[str, Any]:
        """Per episode: the subtask boundaries moved to robot events (the plan module's report)."""
        return self.reports.get("grounding", {})

    def summary(self) -> str:
        """A few lines in plain words: what was annotated, by which module, how many rows of each kind."""
        ok = len(self.episodes) - len(self.failures)
        lines = [f"annotated {ok} of {len(self.episodes)} episodes in {self.seconds:.1f} s -> {self.output_root}"]
        modules = []
        for m in sorted(set(self.modules_run) | set(self.modules_reused)):
            ran, reused = self.modules_run.get(m, 0), self.modules_reused.get(m, 0)
            total = ran + reused
            modules.append(f"{m} {total} episode{'s' if total != 1 else ''}"
                           + (f" ({reused} from staging)" if reused else ""))
        lines.append("modules: " + (", ".join(modules) if modules else "none ran"))
        named = {("speech" if s in (None, "None") else str(s)): n for s, n in self.rows_per_style.items()}
        lines.append("rows: " + (", ".join(f"{s} {n}" for s, n in sorted(named.items())) if named else "none"))
        if self.stats.calls:
            rejected = f", {self.stats.failures} answers rejected" if self.stats.failures else ""
            lines.append(f"model calls {self.stats.calls}{rejected}; tokens {self.stats.prompt_tokens} in, "
                         f"{self.stats.completion_tokens} out")
        if self.rows_kept or self.rows_replaced or self.rows_added:
            lines.append("existing rows kept " + (", ".join(f"{s}={n}" for s, n in sorted(self.rows_kept.items()))
                                                  or "none") + "; replaced " +
                         (", ".join(f"{s}={n}" for s, n in sorted(self.rows_replaced.items())) or "none") +
                         f"; rows added {sum(self.rows_added.values())}")
        if self.frames.get("decoded") or self.frames.get("from_row"):
            lines.append(f"frames decoded {self.frames.get('decoded', 0)}, taken from keyframe columns "
                         f"{self.frames.get('from_row', 0)}, shared between modules {self.frames.get('reused', 0)}")
        if self.batches is not None and self.batches.calls:
            lines.append(f"engine batches: {self.batches.summary()}")
        if self.quality:
            from ...quality import findings_summary

            lines.extend(findings_summary(self.quality))
        lines.extend(f"skipped episode {e}: {why}" for e, why in sorted(self.skipped.items()))
        lines.extend(self.notes)
        if self.validation is not None:
            lines.append(f"validation: {getattr(self.validation, 'summary', lambda: self.validation)()}")
        if self.push is not None:
            lines.append(f"pushed: {self.push.summary() if hasattr(self.push, 'summary') else self.push}")
        for e, reason in sorted(self.failures.items()):
            lines.append(f"FAILED episode {e}: {reason}")
        return "\n".join(lines)
