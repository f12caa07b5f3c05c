"""Subtask boundaries grounded in the robot's own signals.

A VLM reading contact sheets at 1-2 frames/s places a boundary to within about a second; the robot's
state says to the frame when the arm stops or starts moving and when the gripper closes or opens. After
the model's spans are cleaned (`spans.clean_spans`), `snap_spans` moves each boundary to the robot event
nearest to it within a tolerance, never across a neighbouring boundary and never when no event is near.
`events_text` tells the model the same events in the segmentation prompt.

Events, by strength:

- tier 1: the arm comes to rest / starts moving again (`rest_start`, `rest_end`), and gripper changes
  (`gripper_close`: closing complete, `gripper_open`: opening starts) that happen while the arm moves;
- tier 2: speed minima (the arm slows at a via point without stopping), used only where no tier-1 event
  is within the tolerance;
- tier 0 (never a boundary target, still listed in the prompt): a gripper change while the arm holds
  still - the grasp or release *is* the rest, and the rest's edges are where the action changes.

Which column is the signal and which entry the gripper is read from `meta/info.json` feature names
(a name containing gripper/claw/finger/jaw) or set by `--motion.signal` / `--motion.gripper_index`;
without either, boundaries keep the model's frames and the plan info says why. Which way the gripper
closes is not recorded anywhere: an episode is taken to start with it open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from ..dataset.signals import feature_names, read_episode_signals
from ..frames.policies import (
    Motion,
    arm_dimensions,
    arm_motion,
    gripper_from_names,
    rest_windows,
    speed_minima,
)
from ..utils.timeline import evenly_spaced
from .spans import Span

EventKind = Literal["rest_start", "rest_end", "gripper_close", "gripper_open", "speed_min"]
SIGNAL_CANDIDATES = ("observation.state", "action")
_STAY_COST = 2.5  # larger than any snap: a boundary with an event in reach always moves to one

_PHRASES = {
    "rest_start": "the arm stops",
    "rest_end": "the arm starts moving",
    "gripper_close": "the gripper closes",
    "gripper_open": "the gripper starts opening",
    "speed_min": "the arm slows down",
}


@dataclass(frozen=True)
class SignalEvent:
    """One robot event at an exact frame. `tier` 1/2: a boundary may snap to it (1 first); 0: never."""

    kind: EventKind
    index: int
    time: float  # the episode's float32 frame timestamp, as a Python float
    tier: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def text(self) -> str:
        return f"{_PHRASES[self.kind]} at {self.time:.2f} s"


@dataclass(frozen=True)
class RobotSignal:
    """Where the events come from: a numeric column of the data parquet and its gripper entry."""

    column: str
    gripper_index: int | None  # None: no gripper known (rest events only)
    gripper_from: Literal["names", "config", "none"]
    arm_indices: tuple[int, ...]


@dataclass(frozen=True)
class Grounding:
    """An episode's signal, its events and a note for the summary when there is no usable signal."""

    signal: RobotSignal | None
    events: tuple[SignalEvent, ...] = ()
    note: str | None = None

    @property
    def usable(self) -> bool:
        return self.signal is not None and bool(self.events)

    def as_dict(self) -> dict[str, Any]:
        return {"signal": asdict(self.signal) if self.signal else None,
                "events": [e.as_dict() for e in self.events], "note": self.note}


def resolve_signal(episode: Mapping[str, Any], column: str = "observation.state",
                   gripper_index: int | None = None) -> tuple[RobotSignal | None, np.ndarray | None, str | None]:
    """(signal, its (frames, dims) values, note). The configured column, else the first of
    `SIGNAL_CANDIDATES` that the data parquet has; the gripper from the feature names or `gripper_index`."""
    n = len(episode.get("timestamps") or [])
    columns = [column, *[c for c in SIGNAL_CANDIDATES if c != column]]
    try:
        read = read_episode_signals(episode, columns) if episode.get("root") and episode.get("data_file") else {}
    except (OSError, ValueError, KeyError) as exc:
        return None, None, f"cannot read the robot signal ({exc}); boundaries keep the model's frames"
    for key in columns:
        values = read.get(key)
        if values is None or len(values) != n or values.shape[1] == 0:
            continue
        d = values.shape[1]
        names = feature_names(episode.get("root"), key)
        if gripper_index is not None:
            if not -d <= gripper_index < d:
                return None, None, f"--motion.gripper_index={gripper_index} is outside {key!r} ({d} entries)"
            g, source = gripper_index % d, "config"
        else:
            g = gripper_from_names(names)
            source = "names" if g is not None else "none"
        if g is None and d > 1:
            return None, None, (f"no entry of {key!r} is named as the gripper in meta/info.json "
                                f"(names: {names}); set --motion.gripper_index to ground boundaries in it")
        arm = tuple(arm_dimensions(names, d, g))
        return RobotSignal(key, g, source, arm), values, None  # type: ignore[arg-type]
    return None, None, f"no numeric signal column ({', '.join(columns)}) in the data; boundaries keep the model's frames"


def episode_events(episode: Mapping[str, Any], signal: RobotSignal, values: np.ndarray) -> list[SignalEvent]:
    """Rests, gripper changes and speed minima of one episode, sorted by frame (see the module doc)."""
    ts = np.asarray(episode["timestamps"], dtype=np.float32)
    t64 = ts.astype(np.float64)
    out: list[tuple[EventKind, int, int]] = []
    windows: list[tuple[int, int]] = []
    if signal.arm_indices:
        arm = values[:, list(signal.arm_indices)]
        motion = arm_motion(arm, t64)
        if motion is not None:
            windows = rest_windows(arm, t64, motion=motion)
            for a, b in windows:
                out += [("rest_start", a, 1), ("rest_end", b, 1)]
            for i in speed_minima(arm, t64, motion=motion):
                if not any(a - 2 <= i <= b + 2 for a, b in windows):
                    out.append(("speed_min", i, 2))
    if signal.gripper_index is not None:
        g = values[:, signal.gripper_index]
        if np.ptp(g) > 1e-9 * max(1.0, float(np.max(np.abs(g)))):
            # which way is closed is not in the data: an episode is taken to start with the gripper open
            closed = "low" if g[0] - np.min(g) > 0.5 * np.ptp(g) else "high"
            for kind, i in Motion(gripper_closed=closed).gripper_events(g):
                inside = any(a <= i <= b for a, b in windows)
                out.append(("gripper_close" if kind == "grasp" else "gripper_open", i, 0 if inside else 1))
    return [SignalEvent(kind, int(i), float(ts[i]), tier) for kind, i, tier in sorted(out, key=lambda e: (e[1], e[0]))]


def episode_grounding(episode: Mapping[str, Any], column: str = "observation.state",
                      gripper_index: int | None = None) -> Grounding:
    """Signal and events of an episode, or a Grounding with `note` saying why there are none."""
    signal, values, note = resolve_signal(episode, column, gripper_index)
    if signal is None or values is None:
        return Grounding(None, (), note)
    events = episode_events(episode, signal, values)
    if not events:
        return Grounding(signal, (), f"{signal.column}: no rest, gripper change or speed minimum found")
    return Grounding(signal, tuple(events), None)


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
    event: EventKind | None = None  # None: no event within the tolerance (or none reachable), unchanged

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
    from .spans import clean_spans

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
