"""From staged rows to the annotated dataset: keep what the run does not produce, validate, write.

Existing language rows are other people's work (human labels, an earlier run, lerobot-annotate): a run
replaces only the rows of the styles its enabled modules own (`Module.styles`, from the registry) in the episodes
it annotated, keeps every other row, and says what it kept, replaced and added. `--replace_existing=true`
replaces all of an annotated episode's rows. A run where every episode failed writes nothing (and so pushes
nothing). Where it writes, over which dataset, and which modules ran: the run's plan (`plan.RunPlan`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...dataset.layout import INFO_PATH
from ...language.provenance import PROVENANCE_PATH, provenance_text, public_provenance, public_source_identity
from ...language.rows import LanguageRow, as_row
from ..modules.base import SPEECH, Module
from ..modules.registry import load_modules
from .plan import RunPlan

if TYPE_CHECKING:
    from ...language import ValidationReport

logger = logging.getLogger(__name__)

HISTORY_LIMIT = 20


def _style(row: Any) -> str:
    style = row.style if hasattr(row, "style") else row.get("style")
    return SPEECH if style is None else str(style)


def _time(row: Any) -> float:
    return float(row.timestamp if hasattr(row, "timestamp") else row["timestamp"])


def _persistent(row: Any) -> bool:
    from ...language.schema import LANGUAGE_PERSISTENT, STYLE_RULES

    rule = STYLE_RULES.get(row.style)
    return rule is not None and rule.column == LANGUAGE_PERSISTENT


def assemble_rows(staged: Mapping[str, Sequence[LanguageRow | Mapping[str, Any]]],
                  modules: Sequence[Module] | None = None) -> list[LanguageRow]:
    """The episode's rows from its staged modules, in run order (`modules`: the registered ones; default the
    built-in ones). A module's anchored rows win over other modules' rows of that style at the same time
    (an interjection's plan row replaces the plan module's row there: one plan per frame, never two)."""
    registered = list(modules if modules is not None else load_modules())
    names = [m.name for m in registered]
    order = [n for n in names if n in staged] + sorted(set(staged) - set(names))
    rows = {name: [as_row(r) for r in staged[name]] for name in order}
    anchored: dict[tuple[str | None, float], str] = {}  # (style, time) -> the module whose row it is
    for m in registered:
        for style in m.anchored:
            anchored.update({(r.style, r.timestamp): m.name for r in rows.get(m.name, ()) if r.style == style})
    return [r for name in order for r in rows[name] if anchored.get((r.style, r.timestamp), name) == name]


@dataclass
class RowCounts:
    """Rows per style: kept from the existing dataset, replaced (existing rows dropped), added (new rows)."""

    kept: Counter = field(default_factory=Counter)
    replaced: Counter = field(default_factory=Counter)
    added: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {k: dict(sorted(getattr(self, k).items())) for k in ("kept", "replaced", "added")}


def _source_root(plan: RunPlan) -> Path:
    if plan.source is None:
        raise ValueError("writing needs the plan of a resolved source (`prepare_run` makes it)")
    return plan.source.root


def existing_root(plan: RunPlan) -> Path:
    """The dataset a run writes over (whose rows it keeps): the source in place, else an earlier output, else
    the source it copies."""
    if plan.config.in_place:
        return _source_root(plan)
    if (plan.output_root / INFO_PATH).is_file():
        return plan.output_root
    return _source_root(plan)


def check_output_source(plan: RunPlan) -> None:
    """Refuse, before any work, to update an output that holds the annotated copy of another source dataset."""
    out_root = plan.output_root
    if plan.config.in_place or not (out_root / INFO_PATH).is_file():
        return
    try:
        recorded = json.loads((out_root / PROVENANCE_PATH).read_text(encoding="utf-8")).get("source_identity")
    except (OSError, ValueError, AttributeError):
        return
    current = plan.source_identity
    if isinstance(recorded, str) and recorded and public_source_identity(recorded) != public_source_identity(current):
        raise FileExistsError(
            f"{out_root} is the annotated copy of another source ({public_source_identity(recorded)}), not of "
            f"{current.split(':', 1)[-1]}; choose another --out (nothing was changed)"
        )


def keep_existing_rows(
    base_root: Path, per_episode: Mapping[int, list[Mapping[str, Any] | LanguageRow]], plan: RunPlan,
    modules: Iterable[str] | None = None,
) -> tuple[dict[int, list[LanguageRow]], RowCounts]:
    """Each annotated episode's rows = its existing rows of the styles `modules` (names; default: the plan's
    enabled ones) do not own + the new rows.

    With `--replace_existing=true` the new rows replace all. A module's anchored rows (`Module.anchored`) are its
    own, whoever owns their style: when `plan` runs without `interjections`, the plan rows at the kept
    interjections' times stay (every interjection frame carries its own plan row) and win over the new plan row
    at that time; when `interjections` runs, the old interjections' plan rows go.
    """
    from ...language import read_dataset_annotations

    registered = plan.modules
    running = set(registered.enabled_names if modules is None else modules)
    owned = frozenset().union(*(m.styles for m in registered.all if m.name in running))
    anchors = [(m.name, style, anchor) for m in registered.all for style, anchor in m.anchored.items()]
    counts = RowCounts()
    if not per_episode:
        return {}, counts
    try:
        existing, _ = read_dataset_annotations(base_root, episodes=sorted(per_episode))
    except Exception as exc:  # noqa: BLE001 - an unreadable dataset fails in the writer with its own message
        logger.debug("could not read existing rows of %s: %s", base_root, exc)
        existing = {}
    out: dict[int, list[LanguageRow]] = {}
    for e, rows in per_episode.items():
        new = [as_row(r) for r in rows]
        old = list(existing[e].rows) if e in existing else []
        if plan.config.replace_existing:
            keep, drop = [], old
        else:
            # (style, time) -> the module an existing anchored row belongs to (an interjection's plan row)
            anchored = {(style, _time(r)): name for name, style, anchor in anchors for r in old
                        if _style(r) == anchor}
            keep, drop = [], []
            for r in old:
                owner = anchored.get((_style(r), _time(r)))
                mine = owner in running if owner is not None else _style(r) in owned
                (drop if mine else keep).append(r)
            kept_anchored = {at for at, owner in anchored.items() if owner not in running}
            if kept_anchored:  # one plan per frame: the kept interjection's plan row wins
                new = [r for r in new if (_style(r), _time(r)) not in kept_anchored]
            # never two persistent rows of one style and role at one time (training fails on them): the new wins
            taken = {(_style(r), r.role, _time(r)) for r in new if _persistent(r)}
            clash = [r for r in keep if _persistent(r) and (_style(r), r.role, _time(r)) in taken]
            keep = [r for r in keep if r not in clash]
            drop.extend(clash)
        counts.kept.update(_style(r) for r in keep)
        counts.replaced.update(_style(r) for r in drop)
        counts.added.update(_style(r) for r in new)
        out[e] = keep + new
    if counts.kept:
        logger.info("kept %d existing row(s) the run does not produce (%s)", sum(counts.kept.values()),
                    ", ".join(f"{s}={n}" for s, n in sorted(counts.kept.items())))
    if counts.replaced:
        logger.info("replaced %d existing row(s) of the styles the run's modules own (%s)",
                    sum(counts.replaced.values()), ", ".join(f"{s}={n}" for s, n in sorted(counts.replaced.items())))
    return out, counts


def merged_provenance(base_root: Path, provenance: Mapping[str, Any], counts: RowCounts | None = None,
                      failures: Mapping[int, str] | None = None, episodes: Iterable[int] = ()) -> dict[str, Any]:
    """This run's provenance over the existing dataset's: failed episodes carried over until they succeed,
    kept rows' origin (the earlier runs, else the source), a bounded history of earlier runs."""
    previous: dict[str, Any] = {}
    try:
        previous = json.loads((base_root / PROVENANCE_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    if not isinstance(previous, dict):
        previous = {}
    out = dict(provenance)
    done = {int(e) for e in episodes} - {int(e) for e in (failures or {})}
    failed = {str(k): v for k, v in (previous.get("failed_episodes") or {}).items() if int(k) not in done}
    failed.update({str(e): str(reason)[:300] for e, reason in (failures or {}).items()})
    out["failed_episodes"] = dict(sorted(failed.items(), key=lambda kv: int(kv[0])))
    if counts is not None:
        out["rows"] = counts.as_dict()
        if counts.kept:
            if previous:
                origin = {k: previous.get(k) for k in ("package", "package_version", "model_id", "date", "modules")}
            else:
                origin = {"source": str(base_root), "note": "rows present before any lerobot_keyframes run"}
            out["kept_rows_origin"] = origin
    history = list(previous.get("history") or [])
    if previous:
        history.append({k: v for k, v in previous.items() if k not in ("history", "failed_episodes")})
    if history:
        out["history"] = history[-HISTORY_LIMIT:]
    return out


def write_run(
    plan: RunPlan, staged: Mapping[int, list[LanguageRow]], provenance: Mapping[str, Any],
    failures: Mapping[int, str] | None = None, modules: Iterable[str] | None = None,
) -> tuple[ValidationReport, RowCounts, dict[str, Any]]:
    """The end of a run: keep existing rows (`keep_existing_rows`; `modules`: the ones that ran, default the plan's
    enabled ones), merge the provenance, validate and write to the plan's output root.

    Returns (validation report, kept/replaced/added counts, the provenance written)."""
    base = existing_root(plan)
    per_episode, counts = keep_existing_rows(base, staged, plan, modules)
    record = merged_provenance(base, provenance, counts, failures, per_episode)
    record["source_identity"] = plan.source_identity
    # what is written may be published as it is: no path of this machine (the source by `repo@rev` or a hash)
    record = public_provenance(record, roots=[_source_root(plan), plan.output_root])
    report = validate_and_write(plan, per_episode, record, failures)
    return report, counts, record


def validate_and_write(
    plan: RunPlan, per_episode: Mapping[int, list[LanguageRow]], provenance: dict[str, Any],
    failures: Mapping[int, str] | None = None,
) -> ValidationReport:
    """Write the episodes' rows; return the validation report. Nothing is written when it has errors, or
    when every episode of the run failed (`failures`): failed episodes keep the rows they have.

    A first run builds `out_root` from the source (videos hard-linked). A later run into the same
    `out_root` rewrites it in place, so episodes not annotated this time keep the rows they have.
    """
    from ...language import EpisodeAnnotations, LanguageValidationError, ValidatorConfig, write_language
    from ...language.validator import ValidationReport

    if failures and not per_episode:
        report = ValidationReport()
        report.error("all_episodes_failed",
                     f"every episode of the run failed ({len(failures)}): nothing was written, existing annotations "
                     f"are untouched; see the failures above and re-run (staged work is kept)")
        logger.error("%s", report.errors[0])
        return report
    config, source_root, out_root = plan.config, _source_root(plan), plan.output_root
    annotations = {e: EpisodeAnnotations.from_rows(e, rows) for e, rows in per_episode.items()}
    options = {
        "validate": not config.skip_validation,
        # released lerobot 0.6.x fails on VQA of two cameras on one frame: enforce it when rotating
        "validator_config": ValidatorConfig(single_camera_vqa_per_frame=config.vqa.rotate_cameras,
                                            vqa_on_image_cameras=config.vqa.image_cameras),
    }
    extra = {PROVENANCE_PATH: provenance_text(provenance)}
    try:
        if config.in_place:
            result = write_language(source_root, annotations, in_place=True, extra_files=extra, **options)
        elif (out_root / INFO_PATH).is_file():
            logger.info("updating the annotated dataset already at %s", out_root)
            result = write_language(out_root, annotations, in_place=True, extra_files=extra, **options)
        else:
            result = write_language(source_root, annotations, out=out_root, extra_files=extra, **options)
    except LanguageValidationError as exc:
        logger.error("validation failed, nothing was written (staged rows are kept):\n%s", exc.report.format())
        return exc.report
    return result.report
