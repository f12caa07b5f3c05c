"""Segmentation and VQA agreement between a prediction and a reference, per episode and in total.

- Boundaries (the start of every span after the first): precision, recall and F1 at each tolerance, with
  one-to-one matching (a prediction counts for at most one reference boundary and vice versa; on a line
  with one tolerance the two-pointer greedy match is a maximum matching).
- Boundary error: the reference and predicted boundaries paired one-to-one in order (as many pairs as the
  shorter list has, total distance smallest); mean and median absolute error over those pairs, in seconds
  (and frames when the frame rate is known). Missed or extra boundaries show in recall / precision.
- Label agreement: the share of the episode's frames whose active predicted label equals the reference's
  (text compared case- and space-insensitively, trailing dot ignored).
- VQA: answers on the same frame and camera on both sides. Boxes and points are converted to a common
  convention, fractions of the image width and height (`"coords": "pixel"` divides by `image_size`,
  `"norm1000"` by 1000); box IoU over a one-to-one match of boxes (label first, then overlap; an unmatched
  reference box scores 0), and point distance in those units.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .labels import EpisodeLabels, Labels

DEFAULT_TOLERANCES = (0.2, 0.5, 1.0)


def match_count(pred: Sequence[float], ref: Sequence[float], tolerance: float) -> int:
    """Size of a maximum one-to-one matching of points within `tolerance` of each other."""
    p, r = sorted(pred), sorted(ref)
    i = j = hits = 0
    while i < len(p) and j < len(r):
        if abs(p[i] - r[j]) <= tolerance + 1e-9:
            hits, i, j = hits + 1, i + 1, j + 1
        elif p[i] < r[j]:
            i += 1
        else:
            j += 1
    return hits


def paired_errors(pred: Sequence[float], ref: Sequence[float]) -> list[float]:
    """|dt| of an order-keeping one-to-one pairing of min(len) boundaries with the smallest total distance."""
    p, r = sorted(pred), sorted(ref)
    if not p or not r:
        return []
    short, long_ = (p, r) if len(p) <= len(r) else (r, p)
    m, n = len(short), len(long_)
    cost = np.full((m + 1, n + 1), np.inf)
    cost[0, :] = 0.0
    for i in range(1, m + 1):
        for j in range(i, n + 1):
            cost[i, j] = min(cost[i, j - 1], cost[i - 1, j - 1] + abs(short[i - 1] - long_[j - 1]))
    out, i, j = [], m, n
    while i > 0:
        if j > i and cost[i, j] == cost[i, j - 1]:
            j -= 1
        else:
            out.append(abs(short[i - 1] - long_[j - 1]))
            i, j = i - 1, j - 1
    return out[::-1]


def _norm_label(text: str | None) -> str | None:
    return None if text is None else re.sub(r"\s+", " ", str(text)).strip().strip(".").strip().lower()


def _active(spans: Sequence[tuple[float, str | None]], times: np.ndarray) -> list[str | None]:
    starts = np.asarray([s for s, _ in spans], dtype=np.float64)
    idx = np.searchsorted(starts, times + 1e-6, side="right") - 1
    return [(_norm_label(spans[i][1]) if i >= 0 else None) for i in idx]


def label_agreement(pred: EpisodeLabels, ref: EpisodeLabels, fps: float | None) -> float | None:
    """Share of frames with the same active label; None when either side has no labels."""
    if any(t is None for _, t in ref.spans) or any(t is None for _, t in pred.spans):
        return None
    times = ref.frame_times or pred.frame_times
    if times is None:
        duration = ref.duration or pred.duration or max(ref.spans[-1][0], pred.spans[-1][0]) + 1.0
        step = 1.0 / fps if fps else 0.01
        grid = np.arange(0.0, duration, step)
    else:
        grid = np.asarray(times, dtype=np.float64)
    a, b = _active(pred.spans, grid), _active(ref.spans, grid)
    return float(np.mean([x == y for x, y in zip(a, b)])) if len(grid) else None


# -- VQA ------------------------------------------------------------------------------------------------
def _scale(answer: dict[str, Any]) -> tuple[float, float] | None:
    coords = answer.get("coords", "pixel")
    if coords == "norm1000":
        return 1000.0, 1000.0
    size = answer.get("image_size")
    if coords == "pixel" and isinstance(size, (list, tuple)) and len(size) == 2 and min(size) > 0:
        return float(size[0]), float(size[1])
    return None  # no convention or size: cannot be compared


def _boxes(answer: dict[str, Any]) -> list[tuple[str | None, tuple[float, float, float, float]]]:
    s = _scale(answer)
    out = []
    for det in answer.get("detections") or []:
        box = det.get("bbox") if isinstance(det, dict) else None
        if s and isinstance(box, (list, tuple)) and len(box) == 4:
            x1, y1, x2, y2 = (float(v) for v in box)
            out.append((_norm_label(det.get("label")), (x1 / s[0], y1 / s[1], x2 / s[0], y2 / s[1])))
    return out


def _point(answer: dict[str, Any]) -> tuple[float, float] | None:
    s, p = _scale(answer), answer.get("point")
    if s and isinstance(p, (list, tuple)) and len(p) == 2:
        return float(p[0]) / s[0], float(p[1]) / s[1]
    return None


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_scores(pred: dict[str, Any], ref: dict[str, Any]) -> list[float]:
    """IoU per reference box: matched one-to-one (same label first, then the largest overlap); 0 when unmatched."""
    p, r = _boxes(pred), _boxes(ref)
    pairs = sorted(((lp == lr and lp is not None), box_iou(bp, br), i, j)
                   for i, (lp, bp) in enumerate(p) for j, (lr, br) in enumerate(r))
    used_p, used_r, scores = set(), set(), {}
    for _same, iou, i, j in reversed(pairs):
        if i not in used_p and j not in used_r:
            used_p.add(i)
            used_r.add(j)
            scores[j] = iou
    return [scores.get(j, 0.0) for j in range(len(r))]


# -- report ---------------------------------------------------------------------------------------------
@dataclass
class EpisodeScore:
    episode_index: int
    n_ref: int
    n_pred: int
    matched: dict[float, int]  # tolerance -> matched boundaries
    errors: list[float]  # paired |dt| (s)
    label_agreement: float | None
    box_ious: list[float] = field(default_factory=list)
    point_distances: list[float] = field(default_factory=list)
    missing: bool = False  # in the reference, not in the prediction

    def prf(self, tol: float) -> tuple[float, float, float]:
        return prf(self.matched.get(tol, 0), self.n_pred, self.n_ref)


def prf(tp: int, n_pred: int, n_ref: int) -> tuple[float, float, float]:
    """Precision, recall, F1; with nothing to find and nothing found all three are 1."""
    p = tp / n_pred if n_pred else (1.0 if n_ref == 0 else 0.0)
    r = tp / n_ref if n_ref else (1.0 if n_pred == 0 else 0.0)
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


@dataclass
class EvalReport:
    pred_source: str
    ref_source: str
    tolerances: tuple[float, ...]
    fps: float | None
    episodes: list[EpisodeScore]
    only_in_pred: list[int]

    def totals(self) -> dict[str, Any]:
        eps = self.episodes
        n_ref, n_pred = sum(e.n_ref for e in eps), sum(e.n_pred for e in eps)
        errors = [x for e in eps for x in e.errors]
        agreements = [e.label_agreement for e in eps if e.label_agreement is not None]
        out: dict[str, Any] = {"episodes": len(eps), "missing_in_pred": [e.episode_index for e in eps if e.missing],
                               "only_in_pred": self.only_in_pred, "n_ref": n_ref, "n_pred": n_pred}
        for tol in self.tolerances:
            p, r, f = prf(sum(e.matched.get(tol, 0) for e in eps), n_pred, n_ref)
            out[f"precision@{tol:g}"], out[f"recall@{tol:g}"], out[f"f1@{tol:g}"] = p, r, f
        out.update(self._errors(errors))
        out["label_agreement"] = _mean(agreements)
        out["vqa_boxes"] = sum(len(e.box_ious) for e in eps)
        out["box_iou"] = _mean([x for e in eps for x in e.box_ious])
        out["vqa_points"] = sum(len(e.point_distances) for e in eps)
        out["point_distance"] = _mean([x for e in eps for x in e.point_distances])
        return out

    def _errors(self, errors: Sequence[float]) -> dict[str, Any]:
        out = {"boundary_mae_s": _mean(errors), "boundary_median_s": _median(errors), "pairs": len(errors)}
        if self.fps:
            out["boundary_mae_frames"] = None if out["boundary_mae_s"] is None else out["boundary_mae_s"] * self.fps
            out["boundary_median_frames"] = (None if out["boundary_median_s"] is None
                                             else out["boundary_median_s"] * self.fps)
        return out

    def episode_dict(self, e: EpisodeScore) -> dict[str, Any]:
        out: dict[str, Any] = {"episode_index": e.episode_index, "missing": e.missing, "n_ref": e.n_ref,
                               "n_pred": e.n_pred}
        for tol in self.tolerances:
            p, r, f = e.prf(tol)
            out[f"precision@{tol:g}"], out[f"recall@{tol:g}"], out[f"f1@{tol:g}"] = p, r, f
        out.update(self._errors(e.errors))
        out["label_agreement"] = e.label_agreement
        out["box_iou"], out["vqa_boxes"] = _mean(e.box_ious), len(e.box_ious)
        out["point_distance"], out["vqa_points"] = _mean(e.point_distances), len(e.point_distances)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"pred": self.pred_source, "reference": self.ref_source, "tolerances_s": list(self.tolerances),
                "fps": self.fps, "episodes": [self.episode_dict(e) for e in self.episodes], "totals": self.totals()}

    def format(self) -> str:
        """A fixed-width table: one row per episode, then the totals."""
        def num(x: Any, spec: str = ".2f") -> str:
            return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

        tols = self.tolerances
        head = (["episode", "ref", "pred"] + [f"F1@{t:g}" for t in tols] + [f"P@{tols[0]:g}", f"R@{tols[0]:g}"]
                + ["MAE s", "median s", "labels", "box IoU", "point d"])
        lines = []

        def row(name: str, d: dict[str, Any]) -> list[str]:
            return ([name, str(d["n_ref"]), str(d["n_pred"])] + [num(d[f"f1@{t:g}"]) for t in tols]
                    + [num(d[f"precision@{tols[0]:g}"]), num(d[f"recall@{tols[0]:g}"])]
                    + [num(d["boundary_mae_s"], ".3f"), num(d["boundary_median_s"], ".3f"),
                       num(d["label_agreement"]), num(d["box_iou"]), num(d["point_distance"], ".3f")])

        table = [head] + [row(str(e.episode_index) + (" (missing)" if e.missing else ""), self.episode_dict(e))
                          for e in self.episodes]
        totals = self.totals()
        table.append(row("total", totals))
        widths = [max(len(r[k]) for r in table) for k in range(len(head))]
        for k, r in enumerate(table):
            if k == len(table) - 1:
                lines.append("  ".join("-" * w for w in widths))
            lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths)))
        if self.fps and totals.get("boundary_median_frames") is not None:
            lines.append(f"boundary error: mean {totals['boundary_mae_frames']:.2f} frames, median "
                         f"{totals['boundary_median_frames']:.2f} frames at {self.fps:g} fps over {totals['pairs']} pairs")
        if totals["only_in_pred"]:
            lines.append(f"episodes only in the prediction (not scored): {totals['only_in_pred']}")
        return "\n".join(lines)


def score_episode(pred: EpisodeLabels | None, ref: EpisodeLabels, tolerances: Sequence[float],
                  fps: float | None) -> EpisodeScore:
    if pred is None:
        return EpisodeScore(ref.episode_index, len(ref.boundaries), 0, {t: 0 for t in tolerances}, [], None,
                            missing=True)
    pb, rb = pred.boundaries, ref.boundaries
    score = EpisodeScore(ref.episode_index, len(rb), len(pb), {t: match_count(pb, rb, t) for t in tolerances},
                         paired_errors(pb, rb), label_agreement(pred, ref, fps))
    for key, ref_answer in ref.vqa.items():
        pred_answer = pred.vqa.get(key)
        if pred_answer is None:
            continue
        if ref_answer.get("detections") is not None and pred_answer.get("detections") is not None:
            score.box_ious.extend(box_scores(pred_answer, ref_answer))
        rp, pp = _point(ref_answer), _point(pred_answer)
        if rp is not None and pp is not None:
            score.point_distances.append(math.dist(rp, pp))
    return score


def evaluate(pred: Labels, ref: Labels, tolerances: Sequence[float] = DEFAULT_TOLERANCES) -> EvalReport:
    """Score every reference episode (an episode missing from the prediction counts as all missed)."""
    tols = tuple(sorted(float(t) for t in tolerances))
    if not tols or min(tols) < 0:
        raise ValueError(f"tolerances must be >= 0 seconds, got {list(tolerances)}")
    fps = ref.fps or pred.fps
    scores = [score_episode(pred.episodes.get(e), r, tols, fps) for e, r in sorted(ref.episodes.items())]
    only = sorted(set(pred.episodes) - set(ref.episodes))
    return EvalReport(pred.source, ref.source, tols, fps, scores, only)
