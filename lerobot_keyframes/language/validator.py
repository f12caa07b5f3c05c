"""Check language rows against lerobot's rules before anything is written (and on any annotated dataset).

Every rule here prevents a concrete failure downstream: lerobot's resolvers (`active_at`, `emitted_at`)
raise "ambiguous" on duplicate rows, events off a frame are silently dropped, malformed speech atoms or
VQA answers poison training targets. Issues are collected per episode in a report, never raised one by
one, so a user sees every problem of a run at once.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .schema import (
    EMITTED_AT_TOLERANCE_S,
    KNOWN_STYLES,
    LANGUAGE_COLUMNS,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    ROLES,
    SAY_TOOL_NAME,
    STYLE_RULES,
    VQA_QUESTION_TYPES,
    LanguageRow,
    as_row,
    is_float32_exact,
    is_say_tool,
    language_feature_info,
    speech_text,
)

logger = logging.getLogger(__name__)

# Keys an answer may carry besides its shape's own: our coordinate convention and the model's image size
# (recorded so users can convert), and lerobot's optional count note.
VQA_EXTRA_KEYS = frozenset({"coords", "image_size", "note"})
VQA_COORDS = frozenset({"pixel", "norm1000", "norm1"})
_SHAPE_KEYS: dict[str, frozenset[str]] = {
    "bbox": frozenset({"detections"}),
    "keypoint": frozenset({"label", "point_format", "point"}),
    "count": frozenset({"label", "count"}),
    "attribute": frozenset({"label", "attribute", "value"}),
    "spatial": frozenset({"subject", "relation", "object"}),
}


@dataclass(frozen=True)
class Issue:
    """One broken rule: where (episode, time, camera, style) and what to do about it."""

    level: str  # "error" | "warning"
    rule: str
    message: str
    episode_index: int | None = None
    timestamp: float | None = None
    camera: str | None = None
    style: str | None = None

    def __str__(self) -> str:
        where = []
        if self.episode_index is not None:
            where.append(f"episode {self.episode_index}")
        if self.timestamp is not None:
            where.append(f"t={self.timestamp!r}")
        if self.camera is not None:
            where.append(f"camera {self.camera!r}")
        prefix = ", ".join(where)
        return f"[{self.rule}] {prefix + ': ' if prefix else ''}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "rule": self.rule, "message": self.message,
                "episode_index": self.episode_index, "timestamp": self.timestamp,
                "camera": self.camera, "style": self.style}


@dataclass
class ValidationReport:
    """Errors and warnings of one validation pass, with the episodes it checked."""

    issues: list[Issue] = field(default_factory=list)
    episodes_checked: list[int] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, rule: str, message: str, **where: Any) -> None:
        self.issues.append(Issue("error", rule, message, **where))

    def warning(self, rule: str, message: str, **where: Any) -> None:
        self.issues.append(Issue("warning", rule, message, **where))

    def extend(self, other: ValidationReport) -> None:
        self.issues.extend(other.issues)
        self.episodes_checked.extend(e for e in other.episodes_checked if e not in self.episodes_checked)

    def rules(self, level: str | None = None) -> set[str]:
        return {i.rule for i in self.issues if level is None or i.level == level}

    def by_episode(self) -> dict[int | None, dict[str, list[Issue]]]:
        out: dict[int | None, dict[str, list[Issue]]] = {}
        for issue in self.issues:
            out.setdefault(issue.episode_index, {"errors": [], "warnings": []})[issue.level + "s"].append(issue)
        return out

    def failed_episodes(self) -> list[int]:
        return sorted({i.episode_index for i in self.errors if i.episode_index is not None})

    def summary(self) -> str:
        return (f"{len(self.episodes_checked)} episode(s) checked, {len(self.errors)} error(s), "
                f"{len(self.warnings)} warning(s)")

    def format(self, limit: int | None = 50) -> str:
        lines = [self.summary()]
        shown = self.errors + self.warnings
        for issue in shown[:limit] if limit else shown:
            lines.append(f"  {issue.level}: {issue}")
        if limit and len(shown) > limit:
            lines.append(f"  ... and {len(shown) - limit} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        per_episode = {
            str(ep): {"errors": [i.to_dict() for i in v["errors"]], "warnings": [i.to_dict() for i in v["warnings"]]}
            for ep, v in self.by_episode().items()
        }
        return {"ok": self.ok, "episodes_checked": self.episodes_checked, "errors": len(self.errors),
                "warnings": len(self.warnings), "per_episode": per_episode}

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise LanguageValidationError(self)


class LanguageValidationError(ValueError):
    """The rows break rules lerobot depends on; `.report` holds every issue."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__("language rows failed validation: " + report.format(limit=20))


VIEW_DEPENDENT_STYLES = ("vqa", "trace")  # lerobot.datasets.language.VIEW_DEPENDENT_STYLES


@dataclass(frozen=True)
class ValidatorConfig:
    """Which optional rules apply.

    `single_camera_vqa_per_frame`: released lerobot 0.6.0/0.6.1 resolve `emitted_at(t, style=vqa, ...)`
    without a camera and fail when one frame carries VQA from two cameras; turn this on (with the VQA
    module's camera rotation) for output those versions can train on. Off, it is a warning.
    `require_subtasks`: an episode with plan or memory rows must have subtask rows covering it (an episode
    with neither, e.g. a motion-only run, passes: lerobot 0.6.1 has no subtask rule at all).
    `vqa_on_image_cameras`: lerobot 0.6.1's `StagingValidator`, as lerobot-annotate sets it up, rejects
    view-dependent rows (VQA) on a camera stored as images ("not one of the dataset's video keys"); off
    (the default), so do we. Checked when the caller names the video cameras (`video_cameras=`).
    """

    single_camera_vqa_per_frame: bool = False
    require_subtasks: bool = True
    vqa_on_image_cameras: bool = False


@dataclass(frozen=True)
class EpisodeAnnotations:
    """The language rows of one episode: persistent rows and event rows, each with its exact frame time."""

    episode_index: int
    persistent: tuple[LanguageRow, ...] = ()
    events: tuple[LanguageRow, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "persistent", tuple(as_row(r) for r in self.persistent))
        object.__setattr__(self, "events", tuple(as_row(r) for r in self.events))

    @classmethod
    def from_rows(cls, episode_index: int, rows: Iterable[LanguageRow | Mapping[str, Any]]) -> EpisodeAnnotations:
        """Split mixed rows (e.g. staged JSONL rows of every module) into the two columns by style."""
        persistent, events = [], []
        for r in rows:
            row = as_row(r)
            rule = STYLE_RULES.get(row.style)
            (persistent if rule is not None and rule.column == LANGUAGE_PERSISTENT else events).append(row)
        return cls(episode_index, tuple(persistent), tuple(events))

    @property
    def rows(self) -> tuple[LanguageRow, ...]:
        return self.persistent + self.events

    @property
    def empty(self) -> bool:
        return not self.persistent and not self.events


# -- VQA answers ----------------------------------------------------------------------------------
def _pairs_sorted(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if keys != sorted(keys):
        raise _UnsortedKeys(keys)
    return dict(pairs)


class _UnsortedKeys(ValueError):
    pass


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def _nonempty_str(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def classify_vqa_answer(payload: Any) -> str | None:
    """The question type whose shape `payload` has (own keys present, only known extras), or None."""
    if not isinstance(payload, dict):
        return None
    keys = set(payload)
    for qtype, required in _SHAPE_KEYS.items():
        if required <= keys and not (keys - required - VQA_EXTRA_KEYS):
            return qtype
    return None


def check_vqa_answer(content: Any, question_type: str | None = None) -> tuple[str | None, list[str]]:
    """(detected type, problems) for one answer string: JSON object, sorted keys, one of the five shapes."""
    if not isinstance(content, str):
        return None, ["answer content is not a JSON string"]
    try:
        payload = json.loads(content, object_pairs_hook=_pairs_sorted)
    except _UnsortedKeys as exc:
        return None, [f"answer JSON keys are not sorted ({exc.args[0]}); dump it with sort_keys=True"]
    except ValueError as exc:
        return None, [f"answer is not valid JSON ({exc})"]
    qtype = classify_vqa_answer(payload)
    if qtype is None:
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        return None, [f"answer {keys} matches none of the shapes {list(VQA_QUESTION_TYPES)}"]
    problems: list[str] = []
    if question_type is not None and question_type != qtype:
        problems.append(f"answer has the {qtype!r} shape but the question asked for {question_type!r}")
    p = payload
    if qtype == "bbox":
        dets = p["detections"]
        if not isinstance(dets, list):
            problems.append("'detections' must be a list")
        else:
            for k, det in enumerate(dets):
                if not isinstance(det, dict) or not _nonempty_str(det.get("label")):
                    problems.append(f"detection {k} needs a non-empty 'label'")
                    continue
                if det.get("bbox_format") != "xyxy":
                    problems.append(f"detection {k}: bbox_format must be 'xyxy'")
                box = det.get("bbox")
                if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
                    problems.append(f"detection {k}: bbox must be 4 numbers [x1, y1, x2, y2]")
                elif box[0] > box[2] or box[1] > box[3]:
                    problems.append(f"detection {k}: bbox {box} has x1 > x2 or y1 > y2")
    elif qtype == "keypoint":
        if not _nonempty_str(p["label"]):
            problems.append("'label' must be a non-empty string")
        if p["point_format"] != "xy":
            problems.append("point_format must be 'xy'")
        pt = p["point"]
        if not (isinstance(pt, list) and len(pt) == 2 and all(_is_number(v) for v in pt)):
            problems.append("point must be 2 numbers [x, y]")
    elif qtype == "count":
        if not _nonempty_str(p["label"]):
            problems.append("'label' must be a non-empty string")
        c = p["count"]
        if not (isinstance(c, int) and not isinstance(c, bool) and c >= 0):
            problems.append(f"count must be a non-negative integer, got {c!r}")
    elif qtype == "attribute":
        for key in ("label", "attribute", "value"):
            if not _nonempty_str(p[key]):
                problems.append(f"{key!r} must be a non-empty string")
    elif qtype == "spatial":
        for key in ("subject", "relation", "object"):
            if not _nonempty_str(p[key]):
                problems.append(f"{key!r} must be a non-empty string")
    if "coords" in p and p["coords"] not in VQA_COORDS:
        problems.append(f"coords must be one of {sorted(VQA_COORDS)}, got {p['coords']!r}")
    if "image_size" in p:
        size = p["image_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            problems.append(f"image_size must be [width, height] in pixels, got {size!r}")
    return qtype, problems


# -- tool calls -----------------------------------------------------------------------------------
def _tool_call_problem(call: Any) -> str | None:
    if not isinstance(call, Mapping):
        return f"tool call {call!r} is not an object"
    if call.get("type") != "function":
        return "tool call type must be 'function'"
    fn = call.get("function")
    if not isinstance(fn, Mapping) or not _nonempty_str(fn.get("name")):
        return "tool call needs function.name"
    if not isinstance(fn.get("arguments"), Mapping):
        return "tool call function.arguments must be an object, not a JSON string"
    return None


# -- the rules -------------------------------------------------------------------------------------
def validate_episode(
    annotations: EpisodeAnnotations,
    frame_timestamps: Sequence[float] | np.ndarray,
    *,
    cameras: Sequence[str] | None = None,
    config: ValidatorConfig | None = None,
    report: ValidationReport | None = None,
    video_cameras: Sequence[str] | None = None,
) -> ValidationReport:
    """Check one episode's rows against its exact parquet frame timestamps and the dataset's cameras
    (`video_cameras`: those stored as videos, for `ValidatorConfig.vqa_on_image_cameras`)."""
    config = config or ValidatorConfig()
    report = report if report is not None else ValidationReport()
    ep = annotations.episode_index
    report.episodes_checked.append(ep)
    ts_array = np.asarray(frame_timestamps)
    if ts_array.dtype != np.float32:
        report.warning("frame_timestamps", f"frame timestamps are {ts_array.dtype}, expected float32 from the parquet",
                       episode_index=ep)
    frames = [float(t) for t in ts_array]
    frame_set = set(frames)
    camera_set = set(cameras) if cameras is not None else None

    def where(row: LanguageRow) -> dict[str, Any]:
        return {"episode_index": ep, "timestamp": row.timestamp, "camera": row.camera, "style": row.style}

    valid_persistent: list[LanguageRow] = []
    valid_events: list[LanguageRow] = []
    for column, rows, bucket in ((LANGUAGE_PERSISTENT, annotations.persistent, valid_persistent),
                                 (LANGUAGE_EVENTS, annotations.events, valid_events)):
        for row in rows:
            ok = _check_row(row, column, frame_set, camera_set, report, where(row))
            if ok and video_cameras is not None and not config.vqa_on_image_cameras and row.camera \
                    and row.style in VIEW_DEPENDENT_STYLES and row.camera not in video_cameras:
                report.error("vqa_image_camera",
                             f"{row.style} row on camera {row.camera!r}, which is stored as images: lerobot 0.6.1's "
                             f"validator accepts view-dependent rows only on the dataset's video keys "
                             f"{sorted(video_cameras)} (allow it with ValidatorConfig(vqa_on_image_cameras=True))",
                             **where(row))
                ok = False
            if ok:
                bucket.append(row)

    _check_persistent(valid_persistent, frames, config, report, ep)
    _check_events(valid_events, valid_persistent, config, report, ep)
    return report


def _check_row(row: LanguageRow, column: str, frame_set: set[float], camera_set: set[str] | None,
               report: ValidationReport, at: dict[str, Any]) -> bool:
    """Per-row rules; returns False when the row is too broken for the cross-row rules."""
    ok = True
    rule = STYLE_RULES.get(row.style)
    if rule is None:
        report.error("unknown_style", f"style {row.style!r} is not one of {sorted(KNOWN_STYLES)} or None (speech)",
                     **at)
        return False
    if rule.column != column:
        report.error("wrong_column", f"style {row.style!r} belongs in {rule.column}, not {column}", **at)
        ok = False
    if not isinstance(row.role, str) or row.role not in ROLES:
        report.error("invalid_role", f"role {row.role!r} is not one of {sorted(ROLES)}", **at)
        ok = False
    elif row.role not in rule.roles:
        report.error("invalid_role", f"style {row.style!r} needs role {sorted(rule.roles)}, got {row.role!r}", **at)
        ok = False
    if rule.camera_required:
        if not row.camera:
            report.error("camera_required", f"style {row.style!r} needs a camera key", **at)
            ok = False
        elif camera_set is not None and row.camera not in camera_set:
            report.error("unknown_camera", f"camera {row.camera!r} is not a camera of the dataset {sorted(camera_set)}",
                         **at)
            ok = False
    elif row.camera is not None:
        report.error("camera_forbidden", f"style {row.style!r} must have camera null, got {row.camera!r}", **at)
        ok = False
    if not isinstance(row.timestamp, float) or not is_float32_exact(row.timestamp):
        report.error("timestamp_not_float32",
                     f"timestamp {row.timestamp!r} is not a float32 value; copy it from the parquet 'timestamp' column",
                     **at)
        ok = False
    elif row.timestamp not in frame_set:
        report.error("timestamp_not_frame",
                     f"timestamp {row.timestamp!r} is not bit-equal to any frame timestamp of the episode; "
                     "copy times from the parquet, never recompute them", **at)
        ok = False
    if row.style is None:
        if speech_text(row) is None:
            report.error("speech_malformed",
                         "a style-null row must be a speech atom: role assistant, content null, camera null, "
                         "exactly one tool call {type: function, function: {name: say, arguments: {text: str}}}",
                         **at)
            ok = False
        elif not speech_text(row).strip():
            report.error("empty_content", "speech atom says nothing (empty text)", **at)
            ok = False
    elif not isinstance(row.content, str) or not row.content.strip():
        report.error("empty_content", f"{row.style} row has empty content", **at)
        ok = False
    for call in row.tool_calls or ():
        problem = _tool_call_problem(call)
        if problem:
            report.error("tool_call_malformed", problem, **at)
            ok = False
    return ok


def _check_persistent(rows: list[LanguageRow], frames: list[float], config: ValidatorConfig,
                      report: ValidationReport, ep: int) -> None:
    at_time: Counter[tuple[str | None, str, float]] = Counter(
        (r.style, r.role, r.timestamp) for r in rows if r.style != "task_aug"
    )
    for (style, role, ts), n in sorted(at_time.items(), key=lambda kv: kv[0][2]):
        if n > 1:
            report.error("duplicate_persistent",
                         f"{n} {style!r} rows with role {role!r} at one timestamp; lerobot's active_at fails "
                         "with 'ambiguous' on this frame", episode_index=ep, timestamp=ts, style=style)
    # lerobot's emitted_at(t, style=...) on a persistent style matches every row within 0.1 s of the frame
    # time t: two rows of one style are ambiguous on any frame within 0.1 s of both (same float arithmetic).
    by_key: dict[tuple[str | None, str], list[float]] = defaultdict(list)
    for r in rows:
        if r.style != "task_aug":
            by_key[(r.style, r.role)].append(r.timestamp)
    for (style, _role), times in by_key.items():
        times = sorted(set(times))
        for a, b in zip(times, times[1:]):
            lo = bisect.bisect_left(frames, b - EMITTED_AT_TOLERANCE_S - 1e-6)
            hi = bisect.bisect_right(frames, a + EMITTED_AT_TOLERANCE_S + 1e-6)
            if any(abs(a - f) <= EMITTED_AT_TOLERANCE_S and abs(b - f) <= EMITTED_AT_TOLERANCE_S
                   for f in frames[lo:hi]):
                report.warning("persistent_too_close",
                               f"two {style!r} rows {b - a:.3f} s apart: lerobot's emitted_at (window "
                               f"{EMITTED_AT_TOLERANCE_S} s) finds both on a frame between them and fails with "
                               "'ambiguous' (active_at is unaffected)", episode_index=ep, timestamp=b, style=style)
    aug = [r for r in rows if r.style == "task_aug"]
    if aug:
        dup = [c for c, n in Counter(r.content for r in aug).items() if n > 1]
        if dup:
            report.warning("task_aug_duplicate", f"repeated task rephrasings {dup}", episode_index=ep, style="task_aug")
        if frames and any(r.timestamp != frames[0] for r in aug):
            report.warning("task_aug_not_first_frame", "task_aug rows belong at the first frame",
                           episode_index=ep, style="task_aug")
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


def _check_events(events: list[LanguageRow], persistent: list[LanguageRow], config: ValidatorConfig,
                  report: ValidationReport, ep: int) -> None:
    by_time: dict[float, list[LanguageRow]] = defaultdict(list)
    for r in events:
        by_time[r.timestamp].append(r)
    plan_times = {r.timestamp for r in persistent if r.style == "plan"}
    for ts in sorted(by_time):
        rows = by_time[ts]
        speech = [r for r in rows if r.style is None]
        interjections = [r for r in rows if r.style == "interjection"]
        if len(speech) > 1:
            report.error("speech_per_frame", f"{len(speech)} speech atoms on one frame; lerobot's emitted_at "
                         "(role=assistant, tool_name=say) fails with 'ambiguous'", episode_index=ep, timestamp=ts)
        if len(interjections) > 1:
            report.error("interjection_per_frame", f"{len(interjections)} interjections on one frame",
                         episode_index=ep, timestamp=ts, style="interjection")
        if interjections:
            if not speech:
                report.error("interjection_unpaired", "interjection without a speech atom at the same time",
                             episode_index=ep, timestamp=ts, style="interjection")
            if ts not in plan_times:
                report.error("interjection_unpaired", "interjection without a plan row at the same time",
                             episode_index=ep, timestamp=ts, style="interjection")
        vqa = [r for r in rows if r.style == "vqa"]
        counts = Counter((r.camera, r.role) for r in vqa)
        for (cam, role), n in counts.items():
            if n > 1:
                report.error("vqa_duplicate", f"{n} vqa rows with role {role!r} for one (frame, camera)",
                             episode_index=ep, timestamp=ts, camera=cam, style="vqa")
        cams = sorted({r.camera for r in vqa if r.camera})
        for cam in cams:
            roles = {r.role for r in vqa if r.camera == cam}
            if roles != {"user", "assistant"}:
                missing = "answer" if "assistant" not in roles else "question"
                report.error("vqa_unpaired", f"vqa {missing} missing for this (frame, camera)",
                             episode_index=ep, timestamp=ts, camera=cam, style="vqa")
        if len(cams) > 1:
            msg = (f"VQA from {len(cams)} cameras {cams} on one frame: released lerobot 0.6.0/0.6.1 fail with "
                   "'ambiguous' (rotate cameras across ticks for them)")
            if config.single_camera_vqa_per_frame:
                report.error("vqa_multi_camera", msg, episode_index=ep, timestamp=ts, style="vqa")
            else:
                report.warning("vqa_multi_camera", msg, episode_index=ep, timestamp=ts, style="vqa")
        questions = {r.camera: r.question_type for r in vqa if r.role == "user" and r.question_type}
        for r in vqa:
            if r.role != "assistant":
                continue
            qtype = r.question_type or questions.get(r.camera)
            _, problems = check_vqa_answer(r.content, qtype)
            for problem in problems:
                report.error("vqa_answer", problem, episode_index=ep, timestamp=ts, camera=r.camera, style="vqa")


def validate_annotations(
    annotations: Iterable[EpisodeAnnotations],
    frame_timestamps: Mapping[int, Sequence[float] | np.ndarray],
    *,
    cameras: Sequence[str] | None = None,
    config: ValidatorConfig | None = None,
    video_cameras: Sequence[str] | None = None,
) -> ValidationReport:
    """Validate several episodes; `frame_timestamps` maps episode index to its exact parquet timestamps."""
    report = ValidationReport()
    for ann in annotations:
        if ann.episode_index not in frame_timestamps:
            report.error("unknown_episode", f"episode {ann.episode_index} is not in the dataset",
                         episode_index=ann.episode_index)
            continue
        validate_episode(ann, frame_timestamps[ann.episode_index], cameras=cameras, config=config, report=report,
                         video_cameras=video_cameras)
    return report


# -- validating a dataset on disk ------------------------------------------------------------------
def read_dataset_annotations(root: str | Path, *, episodes: Iterable[int] | None = None,
                             report: ValidationReport | None = None) -> tuple[dict[int, EpisodeAnnotations],
                                                                               dict[int, np.ndarray]]:
    """Language rows stored in a dataset's data shards, per episode, with each episode's frame timestamps.

    Persistent rows are taken from the episode's first frame; every other frame must carry the identical
    list (reported as `persistent_not_constant` otherwise). Events take the time of the frame they sit on.
    """
    import pyarrow.parquet as pq

    from ..dataset.episodes import build_episode_rows
    from ..dataset.layout import DatasetLayout

    layout = DatasetLayout.open(root)
    report = report if report is not None else ValidationReport()
    rows = build_episode_rows(layout, episodes=episodes)
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_file[r["data_file"]].append(r)
    out: dict[int, EpisodeAnnotations] = {}
    times: dict[int, np.ndarray] = {}
    for rel, eps in sorted(by_file.items()):
        path = layout.root / rel
        names = pq.read_schema(path).names
        cols = [c for c in ("episode_index", *LANGUAGE_COLUMNS) if c in names]
        table = pq.read_table(path, columns=cols)
        ep_col = table["episode_index"].to_numpy()
        for r in eps:
            e = r["episode_index"]
            ts = np.asarray(r["timestamps"], dtype=np.float32)
            times[e] = ts
            idx = np.nonzero(ep_col == e)[0]
            persistent: list[LanguageRow] = []
            events: list[LanguageRow] = []
            if LANGUAGE_PERSISTENT in names and len(idx):
                cells = table[LANGUAGE_PERSISTENT].slice(int(idx[0]), len(idx)).to_pylist()
                first = cells[0] or []
                if any((c or []) != first for c in cells[1:]):
                    report.error("persistent_not_constant",
                                 "language_persistent differs between frames of the episode; it must be the same "
                                 "list on every frame", episode_index=e)
                persistent = _decode(first, None)
            if LANGUAGE_EVENTS in names and len(idx):
                cells = table[LANGUAGE_EVENTS].slice(int(idx[0]), len(idx)).to_pylist()
                for k, cell in enumerate(cells):
                    events.extend(_decode(cell or [], float(ts[k])))
            out[e] = EpisodeAnnotations(e, tuple(persistent), tuple(events))
    return out, times


def _decode(cells: list[dict[str, Any]], timestamp: float | None) -> list[LanguageRow]:
    from .schema import decode_stored_rows

    return decode_stored_rows(cells, timestamp=timestamp)


def validate_dataset(root: str | Path, *, config: ValidatorConfig | None = None,
                     episodes: Iterable[int] | None = None) -> ValidationReport:
    """Validate an annotated dataset: info.json declarations, shard schemas, and every episode's rows."""
    import pyarrow.parquet as pq

    from ..dataset.layout import DatasetLayout

    layout = DatasetLayout.open(root)
    report = ValidationReport()
    info_path = layout.root / "meta/info.json"
    feats = layout.features
    expected = language_feature_info()
    shards = sorted((layout.root / "data").glob("*/*.parquet"))
    schemas = {p: pq.read_schema(p) for p in shards}
    stored = {c for s in schemas.values() for c in s.names if c in LANGUAGE_COLUMNS}
    for col in LANGUAGE_COLUMNS:
        declared = feats.get(col)
        if col in stored and declared is None:
            report.error("info_undeclared", f"{info_path}: parquet has {col!r} but info.json does not declare it; "
                         "lerobot refuses to load the dataset")
        elif declared is not None and (declared.get("dtype"), list(declared.get("shape") or []),
                                       declared.get("names")) != ("language", [1], None):
            report.error("info_declaration", f"{info_path}: {col} must be declared as {expected[col]}, got {declared}")
        elif declared is not None and col not in stored:
            report.error("info_declared_missing", f"{info_path}: declares {col!r} but no data shard has it")
    if not stored:
        report.warning("no_language", f"{layout.root}: no language columns in the data shards")
    distinct = {s.remove_metadata() for s in schemas.values()}
    if len(distinct) > 1:
        report.warning("mixed_shard_schemas",
                       f"{len(distinct)} different parquet schemas across {len(shards)} data shards; loaders that "
                       "read without features (streaming, load_dataset) may fail")
    tools = layout.info.get("tools") or []
    anns, times = read_dataset_annotations(layout.root, episodes=episodes, report=report)
    has_speech = any(r.style is None for a in anns.values() for r in a.events)
    if has_speech and not any(is_say_tool(t) for t in tools):
        report.warning("say_tool_missing", f"{info_path}: speech atoms call '{SAY_TOOL_NAME}' but info.json 'tools' "
                       "does not declare it (lerobot falls back to its default tools)")
    cameras = layout.camera_keys
    for e in sorted(anns):
        ann = anns[e]
        if ann.empty:
            report.episodes_checked.append(e)
            continue
        validate_episode(ann, times[e], cameras=cameras, config=config, report=report, video_cameras=layout.video_keys)
    _check_failed_episodes(layout.root, anns, report)
    return report


def _check_failed_episodes(root: Path, anns: Mapping[int, EpisodeAnnotations], report: ValidationReport) -> None:
    """Episodes the annotation run recorded as failed (meta/annotation_provenance.json) are never passed silently:
    an error when they have no rows, a warning when they kept rows from before."""
    try:
        failed = json.loads((root / "meta/annotation_provenance.json").read_text(encoding="utf-8"))["failed_episodes"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    for key, reason in sorted((failed or {}).items(), key=lambda kv: int(kv[0])):
        e = int(key)
        if e not in anns:
            continue
        rerun = f"re-run it with --only_episodes={e}"
        if anns[e].empty:
            report.error("annotation_failed", f"episode {e} failed in the annotation run and has no language rows "
                         f"({str(reason)[:300]}); {rerun}", episode_index=e)
        else:
            report.warning("annotation_failed_kept", f"episode {e} failed in the last annotation run and kept its "
                           f"earlier rows ({str(reason)[:300]}); {rerun}", episode_index=e)
