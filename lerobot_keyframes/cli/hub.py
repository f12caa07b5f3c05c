"""`push`, `job`, `merge`: the Hub side (push a root, run `annotate` on HF Jobs, merge a sharded run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .annotate import annotate_configs_from_args
from .flags import add_dataclass_flags, dataclass_from_flags


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `push`, `job` and `merge`."""
    _add_push(sub)
    _add_job(sub)
    _add_merge(sub)


def _add_push(sub: argparse._SubParsersAction) -> None:
    from ..hub.push import PushConfig

    p = sub.add_parser(
        "push",
        help="push a dataset root to the Hub (first push uploads it, later pushes only what changed)",
        description="Push a LeRobot v3 dataset root to --new_repo_id: the first push uploads the folder (staging "
        "and caches skipped), later pushes upload only changed files in one commit; the v3.0 tag moves to the new "
        "commit and README.md gets the dataset card with the annotation provenance. New repos are private unless "
        "--private=false and the source is public (the source: --repo_id, else the one recorded in the root's "
        "meta/annotation_provenance.json; a root with no known source is public only with --private=false). "
        "Pushing to the source needs --allow_source_overwrite=true. Refused before anything is sent: a root with an "
        "interrupted in-place write, a push that would cost an episode of the repo its language rows or drop the "
        "language columns (--allow_row_loss=true), and a repo that may be the root's source when no source is "
        "recorded. --create_pr=true opens a pull request with the changed data and meta files only (no video); "
        "the owner merges it and moves the v3.0 tag. Re-run an interrupted push to complete it.",
    )
    p.add_argument("root_arg", nargs="?", type=Path, default=None, metavar="ROOT",
                   help="the dataset root to push (as `info ROOT`; or --root)")
    add_dataclass_flags(p, "", PushConfig, help=PUSH_HELP)
    p.set_defaults(func=_run_push)


PUSH_HELP = {
    "root": "the dataset root to push (or ROOT, positionally)",
    "allow_source_overwrite": "let --new_repo_id be the source repo (--repo_id) itself",
    "commit_message": "commit message (unset: a generated one)",
}


def _run_push(args: argparse.Namespace) -> int:
    from ..hub.push import PushConfig, run_push

    flag = getattr(args, "root", None)
    if args.root_arg is not None and flag is not None and Path(flag).resolve() != args.root_arg.resolve():
        raise ValueError(f"two roots to push: ROOT {args.root_arg} and --root={flag}; give one")
    extra = {"root": args.root_arg} if args.root_arg is not None else {}
    result = run_push(dataclass_from_flags(args, "", PushConfig, **extra))
    print(result.summary())
    return 0


def _add_job(sub: argparse._SubParsersAction) -> None:
    from ..annotate.executors.jobs import JobConfig

    p = sub.add_parser(
        "job",
        help="run `annotate` on Hugging Face Jobs (vLLM image); --shards N splits the episodes by frames",
        usage="lerobot-keyframes job [--job.* flags] [--shards N] -- <annotate flags>",
        description="Submit `lerobot-keyframes annotate <annotate flags>` to Hugging Face Jobs in the vLLM image "
        "(HF_TOKEN goes as a secret; a timeout is always set). The annotate flags must include --repo_id=<Hub "
        "dataset> and --push_to_hub=true. Prints the job URL and follows its logs unless --job.detach=true. With "
        "--shards N, N jobs each annotate a frame-balanced share of the episodes and push their staging to their "
        "own branch; --resubmit_failed RUN_FILE submits again only the shards that did not finish.",
    )
    add_dataclass_flags(p, "job", JobConfig)
    p.add_argument("--shards", type=int, default=None, metavar="N",
                   help="split into N frame-balanced shard jobs (= --job.shards)")
    p.add_argument("--run_file", type=Path, default=Path("lerobot-keyframes-run-{run_id}.json"),
                   help="where a sharded run is recorded (default: %(default)s)")
    p.add_argument("--resubmit_failed", type=Path, default=None, metavar="RUN_FILE",
                   help="resubmit the unfinished shards of a recorded sharded run")
    p.add_argument("annotate_args", nargs=argparse.REMAINDER, help="after --: the flags of `annotate`")
    p.set_defaults(func=_run_job)


def _run_job(args: argparse.Namespace) -> int:
    import dataclasses

    from ..annotate.executors.jobs import (
        JobConfig,
        ShardedRun,
        resubmit_failed_shards,
        submit_annotation_job,
        submit_sharded_annotation,
    )
    from . import parse

    annotate_args = [a for a in args.annotate_args if a != "--"]
    if args.resubmit_failed is None:  # the annotate flags are checked here, not after the job has started
        annotate_configs_from_args(parse(["annotate", *annotate_args], args.verbose)[0])
    config = dataclass_from_flags(args, "job", JobConfig)
    if args.shards is not None:
        config = dataclasses.replace(config, shards=args.shards)
    if args.resubmit_failed is not None:
        run = ShardedRun.load(args.resubmit_failed)
        resubmit_failed_shards(run, run_file=args.resubmit_failed)
    elif config.shards > 1:
        submit_sharded_annotation(config, annotate_args, run_file=args.run_file)
    else:
        handle = submit_annotation_job(config, annotate_args)
        if handle.stage in ("ERROR", "CANCELED"):
            return 1
    return 0


def _add_merge(sub: argparse._SubParsersAction) -> None:
    from ..annotate.executors.jobs import MergeConfig

    p = sub.add_parser(
        "merge",
        help="merge the shards of a sharded Jobs run into one annotated dataset and push it once",
        description="Collect the staging every shard job pushed to its branch (checked: no overlaps, nothing "
        "missing), write the annotated dataset with the same validator and writer as a single run, and push it "
        "to --new_repo_id in one commit. Takes the run record of `annotate --job.* --shards N` (--run_file).",
    )
    add_dataclass_flags(p, "", MergeConfig)  # the help is the comment on each field's line
    p.set_defaults(func=_run_merge)


def _run_merge(args: argparse.Namespace) -> int:
    from ..annotate.executors.jobs import MergeConfig, run_merge

    outcome = run_merge(dataclass_from_flags(args, "", MergeConfig))
    report = outcome["validation"]
    print(f"merged {len(outcome['episodes'])} episodes into {outcome['out']}: {report.summary()}")
    for note in outcome.get("notes", ()):
        print(note)
    if "push" in outcome:
        print(outcome["push"].summary())
    return 0 if report.ok else 1
