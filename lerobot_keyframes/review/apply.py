"""Apply a reviewer's decisions (the site's `decisions.json`) to an annotated dataset, into a NEW root.

Rejected rows are dropped (a rejected episode loses all its rows), edited contents replace the stored ones,
a moved subtask boundary takes the exact parquet timestamp of the chosen frame. Dependent rows follow so
the result stays valid: a VQA question and its answer are dropped together, an interjection goes with its
speech atom, the memory row at a subtask's start moves or goes with the subtask, and an edited subtask label
is replaced in the plan rows that list it. Everything goes through the package's validator and writer;
`meta/annotation_provenance.json` of the new root records that a person changed the rows.

The decisions file (written by the site's pages):

    {"format": "lerobot_keyframes.review.decisions", "version": 1, "dataset": "<root the site was built from>",
     "dataset_id": "<identity.dataset_identity of that root>",
     "episodes": {"3": {"status": "approved" | "rejected" | null,
                        "annotations": "<identity.annotations_digest of the episode's rows as reviewed>",
                        "rows": {"p4": {"status": "rejected", "was": {...}},
                                 "p6": {"content": "new label", "frame": 57, "was": {...}},
                                 "e9": {"content": "{...edited VQA answer...}", "was": {...}}}}}}

Row ids are those of `review.model.row_ids`; `was` is the row as the reviewer saw it (`row_record`) and
must still match the dataset; `frame` is a frame index of the episode (only for subtask rows). Decisions are
applied only to the dataset they were made on (`dataset_id`) and only while each decided episode still holds
the rows it was reviewed with (`annotations`): a file made for another dataset, or before the annotations
changed, is refused as a whole.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, get_args

import numpy as np

from ..language.journal import check_no_pending_write
from ..language.schema import LanguageRow, say_tool_call, speech_text
from ..language.validator import EpisodeAnnotations, ValidationReport
from ..utils.structured import StructuredInputError, load_json
from .identity import annotations_digest, dataset_identity
from .model import row_ids, row_record

if TYPE_CHECKING:
    from ..dataset.layout import DatasetLayout

DECISIONS_FORMAT = "lerobot_keyframes.review.decisions"
DECISIONS_VERSION = 1
Status = Literal["approved", "rejected"]
ROW_STATUSES: tuple[str | None, ...] = (None, *get_args(Status))


class RowDecision(TypedDict, total=False):
    """A reviewer's decision on one row (`decisions.json` episodes.N.rows.ID)."""

    status: Status | None
    content: str  # the edited content
    frame: int  # a subtask's new start frame
    was: dict[str, Any]  # the row as reviewed (`row_record`)


class EpisodeDecision(TypedDict, total=False):
    """A reviewer's decisions on one episode (`decisions.json` episodes.N)."""

    status: Status | None
    annotations: str  # `identity.annotations_digest` of the episode as reviewed
    rows: dict[str, RowDecision]


class DecisionsError(ValueError):
    """A decisions file is malformed or does not match the dataset it is applied to."""


@dataclass(frozen=True)
class ApplyResult:
    """Where the reviewed dataset is and what the review changed."""

    root: Path
    episodes_approved: tuple[int, ...]
    episodes_rejected: tuple[int, ...]
    rows_rejected: int
    rows_edited: int
    boundaries_moved: int
    rows_approved: int
    changes: tuple[dict[str, Any], ...] = field(repr=False)
    report: ValidationReport = field(repr=False)


DECISIONS_MAX_DEPTH = 16  # episodes -> episode -> rows -> row -> was -> ...: a few levels; deeper is not decisions


def load_decisions(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Read and check a decisions file (or dict); raises `DecisionsError` naming the file and the entry."""
    name = str(source) if not isinstance(source, Mapping) else "decisions"
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        try:  # any size, but never deeper than decisions are (a `[[[[...` file is refused, not a RecursionError)
            data = load_json(Path(source).read_bytes(), name, max_bytes=None, max_depth=DECISIONS_MAX_DEPTH,
                             max_nodes=None)
        except OSError as exc:
            raise DecisionsError(f"{name}: cannot read decisions ({exc.strerror or exc})") from exc
        except StructuredInputError as exc:
            raise DecisionsError(str(exc).replace("not valid JSON", "not JSON", 1)) from exc
    if not isinstance(data, dict) or data.get("format") != DECISIONS_FORMAT:
        raise DecisionsError(f"{name}: not a review decisions file (format must be {DECISIONS_FORMAT!r})")
    if data.get("version") != DECISIONS_VERSION:
        raise DecisionsError(f"{name}: decisions version {data.get('version')!r} is not {DECISIONS_VERSION}")
    if not isinstance(data.get("dataset_id"), str) or not data["dataset_id"]:
        raise DecisionsError(f"{name}: does not record the dataset the decisions were made on ('dataset_id'; made "
                             "by an older review site?); rebuild the site with `lerobot-keyframes review`, load the "
                             "file there and decide again")
    episodes = data.get("episodes")
    if not isinstance(episodes, dict):
        raise DecisionsError(f"{name}: 'episodes' must be an object of episode index -> decisions")
    for key, ep in episodes.items():
        if not re.fullmatch(r"\d+", str(key)) or not isinstance(ep, dict):
            raise DecisionsError(f"{name}: episode {key!r}: expected an episode index and an object")
        if ep.get("status") not in ROW_STATUSES:
            raise DecisionsError(f"{name}: episode {key}: status {ep.get('status')!r} is not approved/rejected/null")
        if not isinstance(ep.get("annotations"), str) or not ep["annotations"]:
            raise DecisionsError(f"{name}: episode {key}: does not record the annotations it was reviewed on "
                                 "('annotations'); decide on the episode again in a site built by this version")
        rows = ep.get("rows") or {}
        if not isinstance(rows, dict):
            raise DecisionsError(f"{name}: episode {key}: 'rows' must be an object of row id -> decision")
        for rid, d in rows.items():
            where = f"{name}: episode {key} row {rid}"
            if not re.fullmatch(r"[pe]\d+", rid) or not isinstance(d, dict):
                raise DecisionsError(f"{where}: expected an id like p3/e7 and an object")
            if d.get("status") not in ROW_STATUSES:
                raise DecisionsError(f"{where}: status {d.get('status')!r} is not approved/rejected/null")
            if "content" in d and not isinstance(d["content"], str):
                raise DecisionsError(f"{where}: content must be a string")
            if "frame" in d and (not isinstance(d["frame"], int) or isinstance(d["frame"], bool)):
                raise DecisionsError(f"{where}: frame must be a frame index (integer)")
            if not isinstance(d.get("was"), dict):
                raise DecisionsError(f"{where}: 'was' (the row as reviewed) is missing")
    return data


def _same_row(was: Mapping[str, Any], row: LanguageRow) -> bool:
    now = row_record(row)
    return all(was.get(k) == now[k] for k in ("style", "role", "camera", "content")) and \
        np.float32(was.get("timestamp", np.nan)) == np.float32(now["timestamp"])


def _replace_label(text: str | None, old: str, new: str) -> str | None:
    """`old` -> `new` in a plan, where it is a whole step (line text after an optional "N. ")."""
    if not text or old == new:
        return text
    lines = text.split("\n")
    out = []
    for line in lines:
        m = re.fullmatch(r"(\s*\d+[.)]\s*)?(.*?)\s*", line)
        out.append((m.group(1) or "") + new if m and m.group(2) == old else line)
    return "\n".join(out)


def _drop_step(text: str | None, label: str) -> str | None:
    """Remove the step `label` from a plan and renumber "N. " steps."""
    if not text:
        return text
    kept = [ln for ln in text.split("\n") if re.sub(r"^\s*\d+[.)]\s*", "", ln).strip() != label]
    if len(kept) == len(text.split("\n")):
        return text
    n = 0
    out = []
    for ln in kept:
        m = re.match(r"^(\s*)\d+([.)])\s*(.*)$", ln)
        if m:
            n += 1
            ln = f"{m.group(1)}{n}{m.group(2)} {m.group(3)}"
        out.append(ln)
    return "\n".join(out)


def apply_episode(ann: EpisodeAnnotations, decision: EpisodeDecision, timestamps: np.ndarray,
                  changes: list[dict[str, Any]], name: str = "decisions") -> EpisodeAnnotations:
    """The episode's rows after its decisions; appends one record per change to `changes`."""
    e = ann.episode_index
    if decision.get("status") == "rejected":
        changes.append({"episode_index": e, "action": "reject_episode", "rows": len(ann.rows)})
        return EpisodeAnnotations(e)
    rows = dict(row_ids(ann))
    decided: Mapping[str, RowDecision] = decision.get("rows") or {}
    where = f"{name}: episode {e}"
    _check_reviewed_rows(ann, rows, decided, where)
    rejected = _rejected_with_dependants(rows, decided, changes, e)
    new: dict[str, LanguageRow] = {}
    for rid, r in rows.items():
        if rid in rejected:
            if rid in decided and decided[rid].get("status") == "rejected":
                changes.append({"episode_index": e, "row": rid, "style": r.style or "speech", "action": "reject",
                                "was": row_record(r)})
            continue
        new[rid] = _decided_row(r, rid, decided.get(rid, {}), timestamps, changes, e, where)
    _follow_subtasks(rows, new, changes, e)
    _check_subtask_order(rows, new, where)
    for rid, d in decided.items():
        if d.get("status") == "approved" and rid not in rejected:
            changes.append({"episode_index": e, "row": rid, "style": rows[rid].style or "speech", "action": "approve"})
    keep = [new[rid] for rid, _ in row_ids(ann) if rid in new]
    return EpisodeAnnotations(e, tuple(r for r in keep if r.column == "language_persistent"),
                              tuple(r for r in keep if r.column != "language_persistent"))


def _check_reviewed_rows(ann: EpisodeAnnotations, rows: Mapping[str, LanguageRow],
                         decided: Mapping[str, RowDecision], where: str) -> None:
    """Every decided row exists and is still the row the reviewer saw."""
    for rid, d in decided.items():
        if rid not in rows:
            raise DecisionsError(f"{where} row {rid}: no such row in the dataset (it has "
                                 f"{len(ann.persistent)} persistent rows and {len(ann.events)} events)")
        if not _same_row(d["was"], rows[rid]):
            raise DecisionsError(f"{where} row {rid}: the dataset's row ({rows[rid].style} at "
                                 f"t={rows[rid].timestamp!r}) differs from the reviewed one; rebuild the review site")


def _rejected_with_dependants(rows: Mapping[str, LanguageRow], decided: Mapping[str, RowDecision],
                              changes: list[dict[str, Any]], e: int) -> set[str]:
    """The rejected row ids plus their dependants: a VQA pair goes together, an interjection goes with its
    speech atom, the memory row at a subtask's start goes with the subtask."""
    rejected = {rid for rid, d in decided.items() if d.get("status") == "rejected"}
    for rid in list(rejected):
        r = rows[rid]
        for oid, o in rows.items():
            if oid in rejected or o.timestamp != r.timestamp:
                continue
            if (r.style == "vqa" and o.style == "vqa" and o.camera == r.camera) or \
                    (speech_text(r) is not None and o.style == "interjection") or \
                    (r.style == "subtask" and o.style == "memory"):
                rejected.add(oid)
                changes.append({"episode_index": e, "row": oid, "style": o.style, "action": "reject",
                                "because": f"{rid} ({r.style or 'speech'}) was rejected"})
    return rejected


def _decided_row(r: LanguageRow, rid: str, d: RowDecision, timestamps: np.ndarray,
                 changes: list[dict[str, Any]], e: int, where: str) -> LanguageRow:
    """One kept row with its edited content and moved start (a subtask's) applied."""
    if "content" in d and d["content"] != row_record(r)["content"]:
        if speech_text(r) is not None:
            r2 = replace(r, tool_calls=(say_tool_call(d["content"]),))
        else:
            r2 = replace(r, content=d["content"])
        changes.append({"episode_index": e, "row": rid, "style": r.style or "speech", "action": "edit",
                        "from": row_record(r)["content"], "to": d["content"]})
        r = r2
    if "frame" in d:
        k, n = d["frame"], len(timestamps)
        if r.style != "subtask":
            raise DecisionsError(f"{where} row {rid}: only a subtask's start can be moved "
                                 f"(this row is {r.style or 'speech'})")
        if not 0 < k < n:
            raise DecisionsError(f"{where} row {rid}: frame {k} is outside (0, {n}); the first "
                                 "subtask starts at frame 0")
        t = float(timestamps[k])  # the exact parquet timestamp, never a recomputed time
        if t != r.timestamp:
            changes.append({"episode_index": e, "row": rid, "style": "subtask", "action": "move",
                            "from": r.timestamp, "to": t, "frame": k})
            r = r.with_timestamp(t)
    return r


def _follow_subtasks(rows: Mapping[str, LanguageRow], new: dict[str, LanguageRow], changes: list[dict[str, Any]],
                     e: int) -> None:
    """Rows that follow a subtask (in place in `new`): the plan lists its label; the rows at its start move with it.

    At a subtask's start the plan module writes a plan (the steps left) and a memory row; an interjection made at
    that boundary (with its speech atom) carries the frame's plan row instead. All of them belong to the
    boundary: when it moves they move, so the new start has its plan and no frame keeps an orphan.
    """
    moved: set[str] = set()
    for rid, old in rows.items():
        if old.style != "subtask":
            continue
        cur = new.get(rid)
        for oid in list(new):
            o = new[oid]
            text = o.content
            if cur is None and o.style == "plan":
                text = _drop_step(o.content, old.content or "")
            elif cur is not None and o.style == "plan" and cur.content != old.content:
                text = _replace_label(o.content, old.content or "", cur.content or "")
            if text != o.content:
                new[oid] = replace(o, content=text)
                changes.append({"episode_index": e, "row": oid, "style": "plan", "action": "edit", "from": o.content,
                                "to": text, "because": f"subtask {rid} was {'edited' if cur else 'rejected'}"})
            if cur is None or cur.timestamp == old.timestamp or oid == rid or oid in moved or \
                    rows[oid].timestamp != old.timestamp:
                continue
            if o.style in ("memory", "plan", "interjection") or speech_text(o) is not None:
                new[oid] = new[oid].with_timestamp(cur.timestamp)
                moved.add(oid)
                changes.append({"episode_index": e, "row": oid, "style": o.style or "speech", "action": "move",
                                "from": old.timestamp, "to": cur.timestamp, "because": f"{rid} moved"})


def _check_subtask_order(rows: Mapping[str, LanguageRow], new: Mapping[str, LanguageRow], where: str) -> None:
    """Moved boundaries keep the subtasks in order, each on its own frame."""
    subtasks = [(rows[rid].timestamp, r.timestamp, rid) for rid, r in new.items() if r.style == "subtask"]
    order_before = [rid for _, _, rid in sorted(subtasks)]
    order_after = [rid for _, _, rid in sorted(subtasks, key=lambda s: (s[1], s[0]))]
    starts = sorted(t for _, t, _ in subtasks)
    if order_before != order_after or len(set(starts)) != len(starts):
        raise DecisionsError(f"{where}: moved subtask boundaries change the order of the subtasks "
                             "or put two on one frame; a subtask must start after the previous one and before the next")


def apply_decisions(root: str | Path, decisions: str | Path | Mapping[str, Any], out: str | Path, *,
                    overwrite: bool = False, reviewer: str | None = None) -> ApplyResult:
    """Write `root` with `decisions` applied to the NEW dataset root `out` (`root` is never modified)."""
    from ..dataset.layout import DatasetLayout
    from ..language.validator import read_dataset_annotations
    from ..utils.files import atomic_write_text
    from .build import PROVENANCE_FILE, read_provenance

    name = str(decisions) if not isinstance(decisions, Mapping) else "decisions"
    data = load_decisions(decisions)
    layout = DatasetLayout.open(root)
    root = layout.root
    check_no_pending_write(root, action='apply review decisions to')
    out = Path(out).expanduser().absolute()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    if data["dataset_id"] != dataset_identity(layout.info):
        raise DecisionsError(f"{name}: made for another dataset ({data.get('dataset') or 'unnamed'}, identity "
                             f"{data['dataset_id']}), not {root} (identity {dataset_identity(layout.info)}); "
                             "pass the --root the review site was built from")
    decided = {int(k): v for k, v in data["episodes"].items()}
    total = int(layout.info.get("total_episodes") or 0)
    missing = sorted(e for e in decided if not 0 <= e < total)
    if missing:
        raise DecisionsError(f"{name}: episode(s) {missing} are not in {root} ({total} episodes)")
    anns, times = read_dataset_annotations(root, episodes=sorted(decided))
    stale = [e for e, d in sorted(decided.items()) if d["annotations"] != annotations_digest(anns.get(e), times[e])]
    if stale:
        raise DecisionsError(f"{name}: the annotations of episode(s) {stale} in {root} are not the ones reviewed (they "
                             "changed since the review site was built, or the site was built from another copy); "
                             "rebuild the site with `lerobot-keyframes review`, check those episodes again, and "
                             "apply the new decisions; nothing was written")
    changes: list[dict[str, Any]] = []
    new = {e: apply_episode(anns[e], d, times[e], changes, name) for e, d in sorted(decided.items())}
    changed = {e: a for e, a in new.items() if a != anns[e]}
    final = _write_reviewed(layout, changed, times, out, overwrite=overwrite, name=name)
    approved = tuple(e for e, d in sorted(decided.items()) if d.get("status") == "approved")
    rejected = tuple(e for e, d in sorted(decided.items()) if d.get("status") == "rejected")
    # what the reviewer decided; rows that followed (a VQA partner, a plan listing a label) carry "because"
    count = {a: sum(1 for c in changes if c["action"] == a and "because" not in c)
             for a in ("reject", "edit", "move", "approve")}
    review = {"by": "person", "reviewer": reviewer, "tool": "lerobot-keyframes review-apply",
              "applied_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "source_root": str(root), "decisions_file": None if isinstance(decisions, Mapping) else str(decisions),
              "decisions_sha256": hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest(),
              "episodes_reviewed": sorted(decided), "episodes_approved": list(approved),
              "episodes_rejected": list(rejected), "rows_rejected": count["reject"], "rows_edited": count["edit"],
              "rows_moved": count["move"], "rows_approved": count["approve"], "changes": changes}
    provenance = read_provenance(root)
    earlier = provenance.get("human_review")
    provenance["human_review"] = [*(earlier if isinstance(earlier, list) else []), review]
    provenance["validator"] = final.summary()
    atomic_write_text(out / PROVENANCE_FILE, json.dumps(provenance, indent=2, sort_keys=True, default=str))
    return ApplyResult(out, approved, rejected, count["reject"], count["edit"], count["move"], count["approve"],
                       tuple(changes), final)


def _write_reviewed(layout: DatasetLayout, changed: Mapping[int, EpisodeAnnotations],
                    times: Mapping[int, np.ndarray], out: Path, *, overwrite: bool, name: str) -> ValidationReport:
    """Validate the changed episodes, write the new root and validate it whole (removed again if it fails)."""
    from ..language.validator import (
        LanguageValidationError,
        ValidatorConfig,
        validate_annotations,
        validate_dataset,
    )
    from ..language.writer import write_language

    report = validate_annotations([a for a in changed.values() if not a.empty], times, cameras=layout.camera_keys,
                                  video_cameras=layout.video_keys)
    if report.errors:
        raise DecisionsError(f"{name}: the reviewed rows fail validation, nothing was written:\n"
                             + report.format(limit=20))
    try:
        # a rejected episode has no rows at all; that is allowed (validated above for the others)
        write_language(layout.root, changed, out=out, overwrite=overwrite,
                       validator_config=ValidatorConfig(require_subtasks=False))
    except LanguageValidationError as exc:
        raise DecisionsError(f"{name}: the reviewed rows fail validation, nothing was written:\n"
                             + exc.report.format(limit=20)) from exc
    final = validate_dataset(out)
    if final.errors:
        shutil.rmtree(out, ignore_errors=True)  # ours, just written; the source is untouched
        raise DecisionsError(f"{out}: the reviewed dataset fails validation and was removed:\n" + final.format(20))
    return final
