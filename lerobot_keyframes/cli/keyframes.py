"""`keyframes`: map `KeyframeTransform` over a dataset's episodes and write the table (or push it)."""

from __future__ import annotations

import argparse

from .flags import add_dataclass_flags, dataclass_from_flags
from .values import parse_bool


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `keyframes`."""
    from ..transform import KeyframesConfig

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
    p.add_argument("--new_repo_id", default=None, metavar="USER/NAME",
                   help="with --push_to_hub=true: the Hub dataset to push to (annotate's grammar)")
    p.set_defaults(func=_run_keyframes)


def _run_keyframes(args: argparse.Namespace) -> int:
    from ..hub.tables import run_keyframes
    from ..transform import KeyframesConfig

    cameras = getattr(args, "cameras", None)
    if cameras is not None and [c.lower() for c in cameras] in (["all"], []):
        cameras = None
    extra = {}
    push = getattr(args, "push_to_hub", None)
    if push is not None and push.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        if parse_bool(push) and not args.new_repo_id:
            raise ValueError("--push_to_hub=true needs --new_repo_id=<user/name>")
        extra["push_to_hub"] = args.new_repo_id if parse_bool(push) else None
    elif push is None and args.new_repo_id:
        raise ValueError("--new_repo_id needs --push_to_hub=true")
    config = dataclass_from_flags(args, "", KeyframesConfig, source=args.source, cameras=cameras, **extra)
    result = run_keyframes(config)
    where = config.out or "(not written: pass --out)"
    new = [c for c in result.column_names if c.startswith(("keyframes.", "keyframe_timestamps.")) or c == "messages"]
    print(f"{len(result)} episodes, columns {', '.join(new)} -> {where}")
    return 0
