"""`info` and `validate`: read a LeRobot v3 dataset (its summary, its language columns) without changing it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .flags import add_bool_flag, add_flag
from .values import episode_list


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `info` and `validate`."""
    _add_info(sub)
    _add_validate(sub)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a summary of a LeRobot v3 dataset (local root or Hub repo id)")
    p.add_argument("source", help="dataset root or Hub repo id")
    p.add_argument("--revision", default=None, metavar="REV",
                   help="Hub revision (branch, tag, commit); default: the v3.0 tag, else main")
    add_bool_flag(p, "--json", help="machine-readable output (default: false)")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from ..dataset.summary import format_summary, summarize

    summary = summarize(args.source, revision=args.revision)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check the language columns of an annotated dataset (non-zero exit on errors)")
    p.add_argument("root", type=Path, help="dataset root")
    add_bool_flag(p, "--json", help="machine-readable report (default: false)")
    add_flag(p, "--episodes", "--only_episodes", type=episode_list, default=None, metavar="INT,...",
             help="only these episodes, e.g. 0,3,5-8")
    add_bool_flag(p, "--single_camera_vqa", hidden=["--single-camera-vqa"],
                  help="error (not warning) on VQA from several cameras on one frame (released lerobot 0.6.0/0.6.1)")
    add_bool_flag(p, "--require_subtasks", default=True,
                  help="error on an annotated episode without subtasks (default: true)")
    for old in ("--no-require-subtasks", "--no_require_subtasks"):
        p.add_argument(old, dest="require_subtasks", action="store_const", const=False, help=argparse.SUPPRESS)
    add_bool_flag(p, "--vqa_on_image_cameras",
                  help="accept VQA on cameras stored as images (lerobot 0.6.1 rejects them; default: false)")
    p.add_argument("--limit", type=int, default=50, metavar="INT", help="issues to print, 0: all (default: 50)")
    p.set_defaults(func=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from ..language.validator import ValidatorConfig, validate_dataset

    config = ValidatorConfig(single_camera_vqa_per_frame=args.single_camera_vqa,
                             require_subtasks=args.require_subtasks, vqa_on_image_cameras=args.vqa_on_image_cameras)
    report = validate_dataset(args.root, config=config, episodes=args.episodes)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format(limit=args.limit or None))
    return 0 if report.ok else 1
