"""`sample`, `tiny-model`, `demo`: the offline pieces (a rendered dataset, a random-weight model, the demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .flags import add_bool_flag, add_flag
from .values import csv_list


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `sample`, `tiny-model` and `demo`."""
    _add_sample(sub)
    _add_tiny_model(sub)
    _add_demo(sub)


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="write a small procedurally rendered LeRobot v3 dataset")
    p.add_argument("out", type=Path, help="output dataset root (must not exist unless --overwrite)")
    p.add_argument("--episodes", type=int, default=4, metavar="INT", help="number of episodes (default: %(default)s)")
    p.add_argument("--cameras", type=csv_list, default=["front", "wrist"], metavar="A,B,...",
                   help="comma-separated camera names (default: front,wrist)")
    p.add_argument("--fps", type=int, default=30, metavar="INT", help="frames per second (default: %(default)s)")
    p.add_argument("--codec", choices=["av1", "h264"], default="av1", help="video codec (default: %(default)s)")
    add_flag(p, "--image_camera", hidden=["--image-camera"], default=None, metavar="NAME",
             help="add a camera stored as images inside the parquet")
    add_flag(p, "--max_video_file_mb", hidden=["--max-video-file-mb"], type=float, default=None, metavar="MB",
             help="roll over to a new mp4 past this size")
    p.add_argument("--seed", type=int, default=0, metavar="INT", help="seed of the rendered scenes (default: %(default)s)")
    p.add_argument("--width", type=int, default=320, metavar="PX", help="frame width (default: %(default)s)")
    p.add_argument("--height", type=int, default=240, metavar="PX", help="frame height (default: %(default)s)")
    add_flag(p, "--episode_seconds", hidden=["--episode-seconds"], type=float, default=6.0, metavar="SECONDS",
             help="length of each episode (default: %(default)s)")
    add_bool_flag(p, "--overwrite", help="replace OUT if it exists (default: false)")
    p.set_defaults(func=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    from ..testing.sample import make_sample_dataset

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

def _add_tiny_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tiny-model", help="build a random-weight tiny Qwen-VL model offline (smoke tests only: its text is meaningless)"
    )
    p.add_argument("out", type=Path, help="output model directory")
    p.add_argument("--family", choices=["qwen2_vl", "qwen2_5_vl", "qwen3_vl"], default="qwen2_5_vl",
                   help="model family (default: %(default)s)")
    add_flag(p, "--head_dim", hidden=["--head-dim"], type=int, default=16, metavar="INT",
             help="attention head size; 64 for models vLLM must run (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="INT", help="seed of the random weights (default: %(default)s)")
    p.set_defaults(func=_run_tiny_model)


def _run_tiny_model(args: argparse.Namespace) -> int:
    from ..testing.tiny_qwen import build_tiny_qwen

    print(build_tiny_qwen(args.family, args.out, head_dim=args.head_dim, seed=args.seed))
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job offline on the embedded sample dataset")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="where the demo writes its results")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(args.out)
