"""`lerobot-keyframes`: a thin command line over the library. Each command parses flags and calls one function."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Command = Callable[[argparse.Namespace], int | None]


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _episodes_arg(value: str) -> list[int]:
    """`0,3,5-8` -> [0, 3, 5, 6, 7, 8]."""
    out: list[int] = []
    for part in _csv(value):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


# -- sample ------------------------------------------------------------------------------------------
def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="write a small procedurally rendered LeRobot v3 dataset")
    p.add_argument("out", type=Path, help="output dataset root (must not exist unless --overwrite)")
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--cameras", type=_csv, default=["front", "wrist"], help="comma-separated camera names")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--codec", choices=["av1", "h264"], default="av1")
    p.add_argument("--image-camera", default=None, help="add a camera stored as images inside the parquet")
    p.add_argument("--max-video-file-mb", type=float, default=None, help="roll over to a new mp4 past this size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--episode-seconds", type=float, default=6.0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    from .testing.sample import make_sample_dataset

    root = make_sample_dataset(
        args.out,
        episodes=args.episodes,
        cameras=args.cameras,
        fps=args.fps,
        codec=args.codec,
        image_camera=args.image_camera,
        max_video_file_mb=args.max_video_file_mb,
        seed=args.seed,
        width=args.width,
        height=args.height,
        episode_seconds=args.episode_seconds,
        overwrite=args.overwrite,
    )
    print(root)
    return 0


# -- info --------------------------------------------------------------------------------------------
def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a summary of a LeRobot v3 dataset (local root or Hub repo id)")
    p.add_argument("source", help="dataset root or Hub repo id")
    p.add_argument("--revision", default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from .dataset.summary import format_summary, summarize

    summary = summarize(args.source, revision=args.revision)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


# -- tiny-model --------------------------------------------------------------------------------------
def _add_tiny_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tiny-model", help="build a random-weight tiny Qwen-VL model offline (smoke tests only: its text is meaningless)"
    )
    p.add_argument("out", type=Path)
    p.add_argument("--family", choices=["qwen2_vl", "qwen2_5_vl", "qwen3_vl"], default="qwen2_5_vl")
    p.add_argument("--head-dim", type=int, default=16, help="64 for models vLLM must run")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_tiny_model)


def _run_tiny_model(args: argparse.Namespace) -> int:
    from .testing.tiny_qwen import build_tiny_qwen

    print(build_tiny_qwen(args.family, args.out, head_dim=args.head_dim, seed=args.seed))
    return 0


# -- annotate ----------------------------------------------------------------------------------------
def _add_annotate(sub: argparse._SubParsersAction) -> None:
    from .annotate.config import (
        AnnotateConfig,
        ExecutorConfig,
        InterjectionsConfig,
        MotionConfig,
        PlanConfig,
        QualityConfig,
        RayConfig,
        VqaConfig,
    )
    from .cli_flags import add_dataclass_flags
    from .vlm.config import VlmConfig

    p = sub.add_parser(
        "annotate",
        help="annotate a dataset with a Qwen-VL model and write lerobot's language columns",
        description="Annotate a LeRobot v3 dataset (subtasks, plans, memory, task rephrasings, interjections "
        "with speech, VQA) and write language_persistent / language_events to a new root (or --in_place). "
        "Re-runs resume from staging; --force recomputes.",
    )
    add_dataclass_flags(p, "", AnnotateConfig)
    for prefix, cls in (("plan", PlanConfig), ("interjections", InterjectionsConfig), ("vqa", VqaConfig),
                        ("motion", MotionConfig), ("quality", QualityConfig), ("executor", ExecutorConfig), ("ray", RayConfig),
                        ("vlm", VlmConfig)):
        add_dataclass_flags(p, prefix, cls)
    from .hub.jobs import add_job_flags

    add_job_flags(p)  # any --job.* flag submits this same run to Hugging Face Jobs instead of running here
    p.add_argument("--shards", type=int, default=None, help="with --job.*: split into N frame-balanced shard jobs")
    p.add_argument("--resume", action="store_true", help="reuse staged results (the default; see --force)")
    p.set_defaults(func=_run_annotate)


def annotate_configs_from_args(args: argparse.Namespace):
    """(AnnotateConfig, VlmConfig) from parsed `annotate` flags."""
    from .annotate.config import (
        AnnotateConfig,
        ExecutorConfig,
        InterjectionsConfig,
        MotionConfig,
        PlanConfig,
        QualityConfig,
        RayConfig,
        VqaConfig,
    )
    from .cli_flags import dataclass_from_flags
    from .vlm.config import VlmConfig

    nested = {
        "plan": dataclass_from_flags(args, "plan", PlanConfig),
        "interjections": dataclass_from_flags(args, "interjections", InterjectionsConfig),
        "vqa": dataclass_from_flags(args, "vqa", VqaConfig),
        "motion": dataclass_from_flags(args, "motion", MotionConfig),
        "quality": dataclass_from_flags(args, "quality", QualityConfig),
        "executor": dataclass_from_flags(args, "executor", ExecutorConfig),
        "ray": dataclass_from_flags(args, "ray", RayConfig),
    }
    return dataclass_from_flags(args, "", AnnotateConfig, **nested), dataclass_from_flags(args, "vlm", VlmConfig)


def _run_annotate(args: argparse.Namespace) -> int:
    import dataclasses

    from .annotate.pipeline import run_annotation
    from .hub.jobs import (
        job_config_from_args,
        strip_job_flags,
        submit_annotation_job,
        submit_sharded_annotation,
    )

    config, vlm = annotate_configs_from_args(args)
    job = job_config_from_args(args)
    if job is not None or args.shards:
        from .hub.jobs import JobConfig

        job = dataclasses.replace(job or JobConfig(), shards=args.shards or (job.shards if job else 1))
        annotate_argv = strip_job_flags(args.argv[args.argv.index("annotate") + 1 :])
        if job.shards > 1:
            submit_sharded_annotation(job, annotate_argv, run_file="lerobot-keyframes-run-{run_id}.json")
        else:
            submit_annotation_job(job, annotate_argv)
        return 0
    result = run_annotation(config, vlm)
    print(result.summary())
    valid = getattr(result.validation, "ok", True)
    return 0 if valid and not result.failures else 1


# -- merge -------------------------------------------------------------------------------------------
def _add_merge(sub: argparse._SubParsersAction) -> None:
    from .annotate.merge import MergeConfig
    from .cli_flags import add_dataclass_flags

    p = sub.add_parser(
        "merge",
        help="merge the shards of a sharded Jobs run into one annotated dataset and push it once",
        description="Collect the staging every shard job pushed to its branch (checked: no overlaps, nothing "
        "missing), write the annotated dataset with the same validator and writer as a single run, and push it "
        "to --new_repo_id in one commit. Takes the run record of `annotate --job.* --shards N` (--run_file).",
    )
    add_dataclass_flags(p, "", MergeConfig)
    p.set_defaults(func=_run_merge)


def _run_merge(args: argparse.Namespace) -> int:
    from .annotate.merge import MergeConfig, run_merge
    from .cli_flags import dataclass_from_flags

    outcome = run_merge(dataclass_from_flags(args, "", MergeConfig))
    report = outcome["validation"]
    print(f"merged {len(outcome['episodes'])} episodes into {outcome['out']}: {report.summary()}")
    if "push" in outcome:
        print(outcome["push"].summary())
    return 0 if report.ok else 1


# -- demo --------------------------------------------------------------------------------------------
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job offline on the embedded sample dataset")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="where the demo writes its results")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out)


# -- validate ----------------------------------------------------------------------------------------
def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check the language columns of an annotated dataset (non-zero exit on errors)")
    p.add_argument("root", type=Path, help="dataset root")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--episodes", type=_episodes_arg, default=None, help="only these episodes, e.g. 0,3,5-8")
    p.add_argument("--single-camera-vqa", action="store_true",
                   help="error (not warning) on VQA from several cameras on one frame (released lerobot 0.6.0/0.6.1)")
    p.add_argument("--no-require-subtasks", action="store_true", help="allow annotated episodes without subtasks")
    p.add_argument("--limit", type=int, default=50, help="issues to print (0: all)")
    p.set_defaults(func=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from .language.validator import ValidatorConfig, validate_dataset

    config = ValidatorConfig(single_camera_vqa_per_frame=args.single_camera_vqa,
                             require_subtasks=not args.no_require_subtasks)
    report = validate_dataset(args.root, config=config, episodes=args.episodes)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format(limit=args.limit or None))
    return 0 if report.ok else 1


# -- push --------------------------------------------------------------------------------------------
def _add_push(sub: argparse._SubParsersAction) -> None:
    from .cli_flags import add_dataclass_flags
    from .hub.push import PushConfig

    p = sub.add_parser(
        "push",
        help="push a dataset root to the Hub (first push uploads it, later pushes only what changed)",
        description="Push a LeRobot v3 dataset root to --new_repo_id: the first push uploads the folder (staging "
        "and caches skipped), later pushes upload only changed files in one commit; the v3.0 tag moves to the new "
        "commit and README.md gets the dataset card with the annotation provenance. New repos are private unless "
        "--private=false and the source (--repo_id) is public. Re-run an interrupted push to complete it.",
    )
    add_dataclass_flags(p, "", PushConfig)
    p.set_defaults(func=_run_push)


def _run_push(args: argparse.Namespace) -> int:
    from .cli_flags import dataclass_from_flags
    from .hub.errors import HubError
    from .hub.push import PushConfig, run_push

    try:
        result = run_push(dataclass_from_flags(args, "", PushConfig))
    except (HubError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


# -- job ---------------------------------------------------------------------------------------------
def _add_job(sub: argparse._SubParsersAction) -> None:
    from .cli_flags import add_dataclass_flags
    from .hub.jobs import JobConfig

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
    p.add_argument("--shards", type=int, default=None, help="split into N frame-balanced shard jobs (= --job.shards)")
    p.add_argument("--run_file", type=Path, default=Path("lerobot-keyframes-run-{run_id}.json"),
                   help="where a sharded run is recorded (default: %(default)s)")
    p.add_argument("--resubmit_failed", type=Path, default=None, metavar="RUN_FILE",
                   help="resubmit the unfinished shards of a recorded sharded run")
    p.add_argument("annotate_args", nargs=argparse.REMAINDER, help="after --: the flags of `annotate`")
    p.set_defaults(func=_run_job)


def _run_job(args: argparse.Namespace) -> int:
    import dataclasses

    from .cli_flags import dataclass_from_flags
    from .hub.errors import HubError
    from .hub.jobs import (
        JobConfig,
        ShardedRun,
        resubmit_failed_shards,
        submit_annotation_job,
        submit_sharded_annotation,
    )

    annotate_args = [a for a in args.annotate_args if a != "--"]
    try:
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
    except (HubError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


# -- keyframes ---------------------------------------------------------------------------------------
def _add_keyframes(sub: argparse._SubParsersAction) -> None:
    from .cli_flags import add_dataclass_flags
    from .transform import KeyframesConfig

    p = sub.add_parser(
        "keyframes",
        help="decode exact keyframes per camera into a datasets table (Image lists, times, Qwen-VL messages)",
        description="Map KeyframeTransform over the episodes of SOURCE (dataset root or Hub repo id) with "
        "datasets.map and write the result to --out (parquet shards under data/, or --format=arrow for "
        "save_to_disk). --policy: uniform:N | fps:HZ | at:T1,T2 | every_frame | motion[:key=value,...], joined "
        "with '+', capped with '@N'. --cameras: all or a comma-separated list of camera keys. A second run "
        "with the same settings loads the datasets cache. --push_to_hub REPO pushes it (private unless "
        "--private=false).",
    )
    p.add_argument("source", help="dataset root or Hub repo id")
    add_dataclass_flags(p, "", KeyframesConfig, skip=("source",))
    p.set_defaults(func=_run_keyframes)


def _run_keyframes(args: argparse.Namespace) -> int:
    from .cli_flags import dataclass_from_flags
    from .transform import KeyframesConfig, extract_keyframes

    cameras = getattr(args, "cameras", None)
    if cameras is not None and [c.lower() for c in cameras] in (["all"], []):
        cameras = None
    try:
        config = dataclass_from_flags(args, "", KeyframesConfig, source=args.source, cameras=cameras)
        result = extract_keyframes(config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    where = config.out or "(not written: pass --out)"
    print(f"{len(result)} episodes, columns {', '.join(result.column_names[-3:])} ... -> {where}")
    return 0


# -- review ------------------------------------------------------------------------------------------
def _add_review(sub: argparse._SubParsersAction) -> None:
    from .cli_flags import add_dataclass_flags
    from .review.config import ReviewConfig

    p = sub.add_parser(
        "review",
        help="write a static HTML review site of an annotated dataset (timelines, subtask strips, VQA with boxes)",
        description="Write a self-contained static site to --out (no server, no network): an index of episodes "
        "with annotation counts and validator status, and one page per episode with per-camera timelines, "
        "subtask spans and frame strips, plans, memory, interjections, speech, task rephrasings and VQA frames "
        "with boxes/points drawn in the recorded coordinate convention. --png adds one timeline image per episode.",
    )
    p.add_argument("root", type=Path, help="annotated dataset root")
    p.add_argument("--out", type=Path, required=True, help="output folder (its index.html, episodes/, assets/ "
                   "and timelines/ are replaced)")
    p.add_argument("--episodes", type=_episodes_arg, default=None, help="only these episodes, e.g. 0,3,5-8")
    p.add_argument("--png", action="store_true", help="also render timelines/episode_NNNNNN.png per episode")
    add_dataclass_flags(p, "", ReviewConfig)
    p.set_defaults(func=_run_review)


def _run_review(args: argparse.Namespace) -> int:
    from .cli_flags import dataclass_from_flags
    from .review import ReviewConfig, build_review

    try:
        config = dataclass_from_flags(args, "", ReviewConfig)
        index = build_review(args.root, args.out, episodes=args.episodes, png=args.png, config=config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(index)
    return 0


COMMANDS: Sequence[Callable[[argparse._SubParsersAction], None]] = (
    _add_sample,
    _add_info,
    _add_tiny_model,
    _add_annotate,
    _add_demo,
    _add_validate,
    _add_push,
    _add_job,
    _add_merge,
    _add_keyframes,
    _add_review,
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="lerobot-keyframes",
        description="Exact keyframes and grounded language for LeRobot v3 datasets.",
    )
    parser.add_argument("--version", action="version", version=f"lerobot_keyframes {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    from .evaluate.cli import add_parser as add_eval

    add_eval(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from .dataset.errors import DatasetFormatError
    from .hub.errors import HubError

    try:
        return int(args.func(args) or 0)
    except (DatasetFormatError, FileNotFoundError, FileExistsError, HubError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
