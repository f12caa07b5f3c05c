"""`lerobot-keyframes eval PRED --reference REF`: segmentation (and VQA) agreement, one row per episode."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _tolerances(value: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds separated by commas, got {value!r}") from None
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 separated by commas, got {value!r}")
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    from .metrics import DEFAULT_TOLERANCES

    p = sub.add_parser(
        "eval",
        help="compare annotated subtasks (and VQA) with a reference: boundary P/R/F1, errors, labels, IoU",
        description="Score the subtask boundaries of PRED (an annotated dataset root, or a JSON file) against "
        "--reference (another annotated dataset, e.g. human labels or a previous model, or a JSON file of phase "
        "boundaries: {\"fps\": 30, \"episodes\": [{\"episode_index\": 0, \"subtasks\": [{\"text\": ..., "
        "\"start\": s}, ...]} | {..., \"boundaries\": [s, ...]} | {..., \"phases\": {name: {\"start\": s, "
        "\"end\": s}}}]}; a sample dataset's ground_truth.json is one). Boundaries are matched one to one; "
        "VQA boxes and points on the same frame and camera are compared in fractions of the image size.",
    )
    p.add_argument("pred", type=Path, help="annotated dataset root (or JSON file) to score")
    p.add_argument("--reference", type=Path, required=True, help="annotated dataset root or JSON file of phase boundaries")
    p.add_argument("--tolerances", type=_tolerances, default=DEFAULT_TOLERANCES,
                   help=f"boundary tolerances in seconds, comma-separated (default: {','.join(map(str, DEFAULT_TOLERANCES))})")
    p.add_argument("--json", action="store_true", help="print the report as JSON (per episode and totals)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .labels import LabelsError, load_labels
    from .metrics import evaluate

    pred, ref = load_labels(args.pred), load_labels(args.reference)  # errors: one line from the CLI's main
    if not ref.episodes:
        raise LabelsError(f"{args.reference}: no episode with subtasks to compare with")
    report = evaluate(pred, ref, args.tolerances)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 0
