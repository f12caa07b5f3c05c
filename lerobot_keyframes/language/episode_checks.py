"""Per-episode rules across rows: what lerobot's resolvers (`active_at`, `emitted_at`) need to stay unambiguous.

Duplicate persistent rows, two rows of one style within `emitted_at`'s window, frames without an active
subtask, two speech atoms or interjections on one frame: each makes lerobot fail with "ambiguous" or train
on a wrong target. The rows given here already passed the per-row rules.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Sequence

from .report import ValidationReport, ValidatorConfig
from .schema import EMITTED_AT_TOLERANCE_S, LanguageRow
from .vqa_checks import check_vqa_frame


def check_persistent(rows: Sequence[LanguageRow], frames: Sequence[float], config: ValidatorConfig,
                     report: ValidationReport, ep: int) -> None:
    """The persistent rules: no duplicates, no two rows too close, task_aug at the start, subtask coverage."""
    timed = [r for r in rows if r.style != "task_aug"]
    _check_duplicates(timed, report, ep)
    _check_too_close(timed, frames, report, ep)
    _check_task_aug([r for r in rows if r.style == "task_aug"], frames, report, ep)
    _check_subtasks(rows, frames, config, report, ep)


def _check_duplicates(rows: Sequence[LanguageRow], report: ValidationReport, ep: int) -> None:
    at_time: Counter[tuple[str | None, str, float]] = Counter((r.style, r.role, r.timestamp) for r in rows)
    for (style, role, ts), n in sorted(at_time.items(), key=lambda kv: kv[0][2]):
        if n > 1:
            report.error("duplicate_persistent",
                         f"{n} {style!r} rows with role {role!r} at one timestamp; lerobot's active_at fails "
                         "with 'ambiguous' on this frame", episode_index=ep, timestamp=ts, style=style)


def _check_too_close(rows: Sequence[LanguageRow], frames: Sequence[float], report: ValidationReport, ep: int) -> None:
    """lerobot's emitted_at(t, style=...) on a persistent style matches every row within 0.1 s of the frame time
    t: two rows of one style are ambiguous on any frame within 0.1 s of both (same float arithmetic)."""
    by_key: dict[tuple[str | None, str], list[float]] = defaultdict(list)
    for r in rows:
        by_key[(r.style, r.role)].append(r.timestamp)
    window = EMITTED_AT_TOLERANCE_S
    for (style, _role), times in by_key.items():
        times = sorted(set(times))
        for a, b in zip(times, times[1:]):
            lo = bisect.bisect_left(frames, b - window - 1e-6)
            hi = bisect.bisect_right(frames, a + window + 1e-6)
            if any(abs(a - f) <= window and abs(b - f) <= window for f in frames[lo:hi]):
                report.warning("persistent_too_close",
                               f"two {style!r} rows {b - a:.3f} s apart: lerobot's emitted_at (window "
                               f"{window} s) finds both on a frame between them and fails with "
                               "'ambiguous' (active_at is unaffected)", episode_index=ep, timestamp=b, style=style)


def _check_task_aug(aug: Sequence[LanguageRow], frames: Sequence[float], report: ValidationReport, ep: int) -> None:
    if not aug:
        return
    dup = [c for c, n in Counter(r.content for r in aug).items() if n > 1]
    if dup:
        report.warning("task_aug_duplicate", f"repeated task rephrasings {dup}", episode_index=ep, style="task_aug")
    if frames and any(r.timestamp != frames[0] for r in aug):
        report.warning("task_aug_not_first_frame", "task_aug rows belong at the first frame",
                       episode_index=ep, style="task_aug")


def _check_subtasks(rows: Sequence[LanguageRow], frames: Sequence[float], config: ValidatorConfig,
                    report: ValidationReport, ep: int) -> None:
    """Every frame has one active subtask (when plan or memory rows need one); subtasks come with a plan."""
    subtasks = sorted(r.timestamp for r in rows if r.style == "subtask")
    if not subtasks:
        needing = sorted({str(r.style) for r in rows if r.style in ("plan", "memory")})
        if config.require_subtasks and frames and needing:
            report.error("subtask_coverage", f"{' and '.join(needing)} rows but no subtask rows: every frame needs "
                         "one active subtask", episode_index=ep, style="subtask")
    elif frames and subtasks[0] != frames[0]:
        report.error("subtask_coverage",
                     f"first subtask starts at t={subtasks[0]!r}, after the first frame t={frames[0]!r}: "
                     "frames before it have no active subtask", episode_index=ep, timestamp=subtasks[0],
                     style="subtask")
    if len(subtasks) > 1 and not any(r.style == "plan" for r in rows):
        report.warning("plan_missing", "subtasks without plan rows", episode_index=ep, style="plan")


def check_events(events: Sequence[LanguageRow], persistent: Sequence[LanguageRow], config: ValidatorConfig,
                 report: ValidationReport, ep: int) -> None:
    """The event rules, frame by frame: speech and interjections, then the frame's VQA."""
    by_time: dict[float, list[LanguageRow]] = defaultdict(list)
    for r in events:
        by_time[r.timestamp].append(r)
    plan_times = {r.timestamp for r in persistent if r.style == "plan"}
    for ts in sorted(by_time):
        rows = by_time[ts]
        _check_speech_frame(rows, ts, ts in plan_times, report, ep)
        check_vqa_frame([r for r in rows if r.style == "vqa"], ts, config, report, ep)


def _check_speech_frame(rows: Sequence[LanguageRow], ts: float, has_plan: bool, report: ValidationReport,
                        ep: int) -> None:
    """At most one speech atom and one interjection per frame; an interjection comes with both."""
    speech = [r for r in rows if r.style is None]
    interjections = [r for r in rows if r.style == "interjection"]
    if len(speech) > 1:
        report.error("speech_per_frame", f"{len(speech)} speech atoms on one frame; lerobot's emitted_at "
                     "(role=assistant, tool_name=say) fails with 'ambiguous'", episode_index=ep, timestamp=ts)
    if len(interjections) > 1:
        report.error("interjection_per_frame", f"{len(interjections)} interjections on one frame",
                     episode_index=ep, timestamp=ts, style="interjection")
    if interjections and not speech:
        report.error("interjection_unpaired", "interjection without a speech atom at the same time",
                     episode_index=ep, timestamp=ts, style="interjection")
    if interjections and not has_plan:
        report.error("interjection_unpaired", "interjection without a plan row at the same time",
                     episode_index=ep, timestamp=ts, style="interjection")
