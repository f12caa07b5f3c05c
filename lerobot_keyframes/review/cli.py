"""`lerobot-keyframes review` (build, optionally serve) and `lerobot-keyframes review-apply` (decisions -> new root)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..cli.flags import add_bool_flag, add_dataclass_flags, add_flag
    from ..cli.values import episode_list
    from .config import ReviewConfig

    p = sub.add_parser(
        "review",
        help="write a review site of an annotated dataset (video player, timelines, VQA boxes, decisions)",
        description="Write a self-contained site to --out (no network): an index of episodes to sort and filter "
        "by validator status, style, text, model, subtasks and duration, and one page per episode with every "
        "camera's video in sync under a timeline of subtask bands and event ticks (click to seek to the exact "
        "parquet frame, arrow keys step frames), subtask strips, plans, memory, interjections, speech and VQA "
        "frames with boxes/points. Approve, reject and edit rows there; the decisions are downloaded as "
        "decisions.json, or saved next to the site with --serve; `lerobot-keyframes review-apply` applies them.",
    )
    p.add_argument("root", type=Path, help="annotated dataset root")
    p.add_argument("--out", type=Path, required=True, help="output folder (its index.html, episodes/, assets/ "
                   "and timelines/ are replaced, videos/ refreshed, decisions.json kept)")
    add_flag(p, "--episodes", "--only_episodes", type=episode_list, default=None, metavar="INT,...",
             help="only these episodes, e.g. 0,3,5-8")
    add_bool_flag(p, "--png", help="also render timelines/episode_NNNNNN.png per episode (default: false)")
    add_bool_flag(p, "--serve", help="then serve the site on 127.0.0.1 until Ctrl-C; the page saves decisions to "
                  "OUT/decisions.json (default: false)")
    p.add_argument("--port", type=int, default=8765, help="port for --serve (0: any free port)")
    add_dataclass_flags(p, "", ReviewConfig)
    p.set_defaults(func=run_review)

    a = sub.add_parser(
        "review-apply",
        help="apply review decisions (decisions.json) to an annotated dataset, into a new dataset root",
        description="Load the annotated dataset's language rows, drop rejected rows (a rejected episode loses all "
        "of them), keep edits, move subtask boundaries to the exact parquet timestamps of the chosen frames "
        "(memory and plan rows follow), validate, and write a NEW dataset root with the package's writer. "
        "The input root is never modified; meta/annotation_provenance.json records the human review.",
    )
    a.add_argument("decisions", type=Path, help="decisions.json saved from the review site")
    a.add_argument("--root", type=Path, required=True, help="the annotated dataset the site was built from")
    a.add_argument("--out", type=Path, required=True, help="new dataset root to write (must not exist)")
    add_bool_flag(a, "--overwrite", help="replace --out when it exists (never --root) (default: false)")
    a.add_argument("--reviewer", default=None, help="name recorded in the provenance")
    a.set_defaults(func=run_apply)


def run_review(args: argparse.Namespace) -> int:
    from ..cli.flags import dataclass_from_flags
    from ..dataset.layout import check_output_separate
    from .build import build_review
    from .config import ReviewConfig

    try:
        config = dataclass_from_flags(args, "", ReviewConfig)
        check_output_separate(args.root, args.out)  # the site's folders are replaced: never inside the dataset
        index = build_review(args.root, args.out, episodes=args.episodes, png=args.png, config=config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(index)
    if args.serve:
        from .serve import serve

        try:
            serve(args.out, port=args.port)
        except (OSError, ValueError) as exc:
            print(f"error: cannot serve {args.out} on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
            return 2
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from .apply import DecisionsError, apply_decisions

    try:
        result = apply_decisions(args.root, args.decisions, args.out, overwrite=args.overwrite,
                                 reviewer=args.reviewer)
    except DecisionsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.root}: {len(result.episodes_rejected)} episode(s) rejected, {result.rows_rejected} row(s) "
          f"dropped, {result.rows_edited} edited, {result.boundaries_moved} boundary(ies) moved; "
          f"{result.report.summary()}")
    return 0
