"""Subtask boundaries grounded in the robot's own signals.

A VLM reading contact sheets at 1-2 frames/s places a boundary to within about a second; the robot's
state says to the frame when the arm stops or starts moving and when the gripper closes or opens. After
the model's spans are cleaned (`spans.clean_spans`), `snap_spans` moves each boundary to the robot event
nearest to it within a tolerance, never across a neighbouring boundary and never when no event is near.
`events_text` tells the model the same events in the segmentation prompt.

The events, their tiers and where the signal comes from are `frames.policies.events` (`episode_grounding`);
without a usable signal, boundaries keep the model's frames and the plan info says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...frames.policies.events import Grounding, SignalEvent, SignalEventKind
from ...frames.policies.events import episode_grounding as episode_grounding  # the plan module reads it here
from ...utils.timeline import evenly_spaced
from .spans import Span, clean_spans

_STAY_COST = 2.5  # larger than any snap: a boundary with an event in reach always moves to one


def events_text(events: Sequence[SignalEvent], start: float = -np.inf, end: float = np.inf,
                column: str = "observation.state", max_events: int = 24) -> str:
    """The events in [start, end) as a prompt line ("the gripper closes at 2.13 s; ..."), '' when none.

    Speed minima are left out: they are weak cues, and a model reading them as boundaries over-segments.
    At most `max_events` (evenly thinned) keep the prompt short on long windows."""
    shown = [e.text for e in events if e.kind != "speed_min" and start <= e.time < end]
    if len(shown) > max_events:
        shown = [shown[k] for k in evenly_spaced(len(shown), max_events)]
    if not shown:
        return ""
    return (f"\nThe robot's own signals ({column}) show: " + "; ".join(shown)
            + ". Steps often begin or end at such moments.\n")


@dataclass(frozen=True)
class Snap:
    """What happened to one boundary (the start of span k >= 1)."""

    span: int
    from_time: float
    to_time: float
    from_index: int
    to_index: int
    event: SignalEventKind | None = None  # None: no event within the tolerance (or none reachable), unchanged

    def as_dict(self) -> dict[str, Any]:
        return {"span": self.span, "from": self.from_time, "to": self.to_time, "from_index": self.from_index,
                "to_index": self.to_index, "event": self.event}


def snap_spans(spans: Sequence[Span], events: Sequence[SignalEvent], timestamps: Sequence[float] | np.ndarray,
               fps: float, *, tolerance_s: float, min_frames: int = 1) -> tuple[list[Span], list[Snap]]:
    """Move each span boundary to a robot event within `tolerance_s`; return the spans and what moved.

    One optimal, order-keeping assignment over all boundaries at once (a small dynamic programme): each
    boundary either stays or takes an event lying strictly between its neighbouring boundaries; events are
    used at most once; every span keeps at least `min_frames` frames; tier-1 events beat tier-2 ones, and
    among them the total shift is smallest. The first span always starts at frame 0; labels keep their order.
    """
    ts = np.asarray(timestamps, dtype=np.float32)
    n = len(ts)
    spans = list(spans)
    if len(spans) < 2 or n == 0 or tolerance_s <= 0:
        return spans, []
    t = ts.astype(np.float64)
    bounds = [s.start_index for s in spans[1:]]
    m = len(bounds)
    candidates = [e for e in events if e.tier in (1, 2) and 0 < e.index < n]
    options: list[list[tuple[int, float, SignalEvent | None]]] = []
    for i, b in enumerate(bounds):
        lo = bounds[i - 1] if i > 0 else 0
        hi = bounds[i + 1] if i + 1 < m else n
        opts: list[tuple[int, float, SignalEvent | None]] = [(b, _STAY_COST, None)]
        for e in candidates:
            dt = abs(t[e.index] - t[b])
            if lo < e.index < hi and dt <= tolerance_s + 1e-9:
                opts.append((e.index, dt / tolerance_s + (0.0 if e.tier == 1 else 1.0), e))
        options.append(opts)
    gap = max(1, int(min_frames))
    best: list[list[tuple[float, int]]] = []  # per boundary, per option: (cost so far, previous option)
    for i, opts in enumerate(options):
        row = []
        for pos, cost, _ in opts:
            if i == 0:
                total, prev = (cost, -1) if pos >= gap else (np.inf, -1)
            else:
                total, prev = np.inf, -1
                for j, (ppos, _, _) in enumerate(options[i - 1]):
                    if pos - ppos >= gap and best[i - 1][j][0] + cost < total:
                        total, prev = best[i - 1][j][0] + cost, j
            if i == m - 1 and n - pos < gap:
                total = np.inf
            row.append((total, prev))
        best.append(row)
    k = int(np.argmin([c for c, _ in best[-1]]))
    if not np.isfinite(best[-1][k][0]):
        return spans, [Snap(i + 1, float(t[b]), float(t[b]), b, b) for i, b in enumerate(bounds)]
    chosen = [0] * m
    for i in range(m - 1, -1, -1):
        chosen[i] = k
        k = best[i][k][1]
    positions = [options[i][chosen[i]][0] for i in range(m)]
    snaps = []
    for i, (b, c) in enumerate(zip(bounds, chosen)):
        pos, _, event = options[i][c]
        snaps.append(Snap(i + 1, float(t[b]), float(t[pos]), b, pos, event.kind if event else None))
    starts = [0, *positions]
    out = []
    for k, span in enumerate(spans):
        a = starts[k]
        e = starts[k + 1] if k + 1 < len(starts) else n
        end = float(ts[e]) if e < n else float(ts[-1]) + 1.0 / fps
        out.append(Span(text=span.text, start_index=a, end_index=e, start=float(ts[a]), end=end))
    return out, snaps


def ground_spans(raw: Any, timestamps: Sequence[float] | np.ndarray, fps: float, events: Sequence[SignalEvent], *,
                 tolerance_s: float, min_seconds: float, max_steps: int,
                 fallback_text: str) -> tuple[list[Span], list[Snap]]:
    """`clean_spans` with the boundaries snapped to the events in between: the model's spans are made
    frame-exact (keeping short ones), snapped, then cleaned again with `min_seconds`. Snapping first keeps
    two close boundaries that each have their own event (a noisy model often puts the two edges of a short
    grasp 0.2 s apart), where merging first would lose one of them."""
    fine = clean_spans(raw, timestamps, fps, min_seconds=0.0, max_steps=max_steps, fallback_text=fallback_text)
    snapped, snaps = snap_spans(fine, events, timestamps, fps, tolerance_s=tolerance_s)
    final = clean_spans([s.as_dict() for s in snapped], timestamps, fps, min_seconds=min_seconds,
                        max_steps=max_steps, fallback_text=fallback_text)
    kept = {s.start_index for s in final}
    return final, [s for s in snaps if s.to_index in kept]


def should_snap(setting: bool | None, grounding: Grounding) -> bool:
    """`--plan.snap_to_signals`: None (auto) snaps when the episode has a usable signal with events."""
    return grounding.usable if setting is None else bool(setting) and grounding.usable


def grounding_info(grounding: Grounding, snaps: Sequence[Snap] | None, enabled: bool,
                   tolerance_s: float) -> dict[str, Any]:
    """What the plan module stages (and provenance shows) about grounding for one episode."""
    info = grounding.as_dict()
    info.update({"snap_to_signals": enabled, "snap_tolerance_s": tolerance_s,
                 "snapped": [s.as_dict() for s in snaps or []]})
    return info


def grounding_provenance(infos: Mapping[int, Mapping[str, Any] | None]) -> dict[str, Any]:
    """Per episode, compactly, for `meta/annotation_provenance.json`: the signal used, how many events were
    found (and shown to the model), each moved boundary as [from s, to s, event], or the note why not."""
    out: dict[str, Any] = {}
    for e, info in sorted(infos.items()):
        g = (info or {}).get("grounding")
        if not g:
            continue
        signal = g.get("signal") or {}
        out[str(e)] = {
            "signal": signal.get("column"), "gripper_index": signal.get("gripper_index"),
            "events": len(g.get("events", [])), "snap_to_signals": g.get("snap_to_signals"),
            "moved": [[s["from"], s["to"], s["event"]] for s in g.get("snapped", []) if s.get("event")],
            **({"note": g["note"]} if g.get("note") else {}),
        }
    return out


def grounding_summary(infos: Mapping[int, Mapping[str, Any] | None]) -> list[str]:
    """Summary lines from the plan infos of a run ({episode: staged plan info}): how many episodes had their
    boundaries snapped and by how much, and why the others were not (e.g. no gripper entry named)."""
    snapped, moved, total, shifts = 0, 0, 0, []
    notes: dict[str, list[int]] = {}
    for e, info in sorted(infos.items()):
        g = (info or {}).get("grounding")
        if not g:
            continue
        if g.get("snap_to_signals"):
            snapped += 1
            for s in g.get("snapped", []):
                total += 1
                if s.get("event"):
                    moved += 1
                    shifts.append(abs(float(s["to"]) - float(s["from"])))
        if g.get("note"):
            notes.setdefault(str(g["note"]), []).append(e)
    lines = []
    if snapped:
        median = f", median shift {float(np.median(shifts)):.2f} s" if shifts else ""
        lines.append(f"grounding: boundaries snapped to robot events in {snapped} episodes "
                     f"({moved} of {total} boundaries moved{median})")
    for note, eps in notes.items():
        shown = ", ".join(str(e) for e in eps[:8]) + (" ..." if len(eps) > 8 else "")
        lines.append(f"grounding: not snapped in {len(eps)} episodes ({shown}): {note}")
    return lines
