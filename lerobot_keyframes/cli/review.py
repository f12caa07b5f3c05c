"""`lerobot-keyframes review` (build, optionally serve) and `lerobot-keyframes review-apply` (decisions -> new root).

Errors are raised, not printed: `main` prints them as one line (`lerobot-keyframes review: error: ...`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .flags import add_bool_flag, add_dataclass_flags, add_flag
from .values import episode_list


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..review.config import ReviewConfig

    p = sub.add_parser(
        "review",
        help="write a review site of an annotated dataset (video player, timelines, VQA boxes, decisions)",
        description="Write a self-contained site to --out (it is viewed with no network): an index of episodes to sort and filter "
        "by validator status, style, text, model, subtasks and duration, and one page per episode with every "
        "camera's video in sync under a timeline of subtask bands and event ticks (click to seek to the exact "
        "parquet frame, arrow keys step frames), subtask strips, plans, memory, interjections, speech and VQA "
        "frames with boxes/points. Approve, reject and edit rows there; the decisions are downloaded as "
        "decisions.json, or saved next to the site with --serve; `lerobot-keyframes review-apply` applies them.",
    )
    p.add_argument("root", help="annotated dataset root, or a Hub dataset repo id (user/name)")
    p.add_argument("--revision", default=None, metavar="REV",
                   help="Hub revision (branch, tag, commit) of a repo id; default: the v3.0 tag, else main")
    p.add_argument("--out", type=Path, required=True, help="output folder: a new or empty folder, or a review site "
                   "built before (its index.html, episodes/, assets/ and timelines/ are replaced, videos/ refreshed, "
                   "decisions.json kept); any other folder is refused")
    add_flag(p, "--episodes", "--only_episodes", type=episode_list, default=None, metavar="INT,...",
             help="only these episodes, e.g. 0,3,5-8")
    add_bool_flag(p, "--png", help="also render timelines/episode_NNNNNN.png per episode; needs matplotlib "
                  "(pip install 'lerobot_keyframes[review]') (default: false)")
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
        "(the memory and plan rows at a boundary follow it, and an interjection there with its speech), validate, "
        "and write a NEW dataset root with the package's writer. The decisions must have been made on this "
        "dataset and on the annotations it holds now (both are recorded in decisions.json); otherwise nothing is "
        "written. The input root is never modified; meta/annotation_provenance.json records the human review.",
    )
    a.add_argument("decisions", type=Path, help="decisions.json saved from the review site")
    a.add_argument("--root", type=Path, required=True, help="the annotated dataset the site was built from")
    a.add_argument("--out", type=Path, required=True, help="new dataset root to write (must not exist)")
    add_bool_flag(a, "--overwrite", help="replace --out when it exists (never --root) (default: false)")
    a.add_argument("--reviewer", default=None, help="name recorded in the provenance")
    a.set_defaults(func=run_apply)


def run_review(args: argparse.Namespace) -> int:
    from ..review.build import build_review
    from ..review.config import ReviewConfig
    from .flags import dataclass_from_flags

    config = dataclass_from_flags(args, "", ReviewConfig)
    index = build_review(args.root, args.out, episodes=args.episodes, png=args.png, config=config,
                         revision=args.revision)
    print(index)
    if args.serve:
        from ..review.serve import serve

        try:
            serve(args.out, port=args.port)
        except OSError as exc:
            raise OSError(f"cannot serve {args.out} on 127.0.0.1:{args.port}: {exc.strerror or exc}") from exc
    return 0


def run_apply(args: argparse.Namespace) -> int:
    from ..review.apply import apply_decisions

    result = apply_decisions(args.root, args.decisions, args.out, overwrite=args.overwrite, reviewer=args.reviewer)
    print(f"{result.root}: {len(result.episodes_rejected)} episode(s) rejected, {result.rows_rejected} row(s) "
          f"dropped, {result.rows_edited} edited, {result.boundaries_moved} boundary(ies) moved; "
          f"{result.report.summary()}")
    return 0
