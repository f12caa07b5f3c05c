"""Review site: wall time of `build_review` for 100 episodes x 2 cameras of the sample dataset.

The annotated dataset (sample generator, AV1 GOP 2, 320x240 @ 30 fps, short episodes, synthetic rows of every
style) is generated once into a cache folder and reused. Timed in the same run: in-process (`workers=1`,
the baseline), the process pool (`workers=0`: auto, up to 4 and at most the CPU count), the pool with
`--png` timelines, and the CLI end to end in a fresh process (imports included), for this tree and, with
`--baseline_ref`, for the package as of that git ref (unpacked with `git archive`, same dataset, same run).
Thumbnails: 8 per camera, 4 per subtask span, VQA frames 320 px wide. Site size counts the pages and JPEGs;
the videos the player needs are hard links to the dataset's files (no extra bytes on one file system) and
are listed apart.

Run: `.venv/bin/python benchmarks/review.py [--episodes 100] [--baseline_ref REF] [--out docs/benchmarks.md]`
(prints a markdown section; with --out, replaces only the "Review" section of that file).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from docs_section import write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEADING = "## Review"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lerobot_keyframes" / "bench"


def annotated_dataset(cache: Path, episodes: int, seconds: float) -> Path:
    """The cached annotated sample dataset (built on first use)."""
    from lerobot_keyframes.language import write_language
    from lerobot_keyframes.language.synthetic import synthetic_annotations
    from lerobot_keyframes.testing.sample import make_sample_dataset

    root = cache / f"review-{episodes}x2-{seconds:g}s"
    annotated = root / "annotated"
    if (annotated / "meta" / "info.json").is_file():
        return annotated
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    src = make_sample_dataset(root / "source", episodes=episodes, cameras=("front", "wrist"),
                              episode_seconds=seconds)
    write_language(src, synthetic_annotations(src), out=annotated)
    print(f"generated {annotated} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return annotated


def _timed(root: Path, out: Path, **kwargs: Any) -> float:
    from lerobot_keyframes.review import build_review

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    build_review(root, out, **kwargs)
    return time.perf_counter() - t0


def _size_mb(path: Path) -> float:
    """Pages, JPEGs and PNGs; not `videos/` (hard links to the dataset's own files)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "videos" not in
               p.relative_to(path).parts) / 1e6


def _videos(path: Path) -> str:
    files = [p for p in (path / "videos").rglob("*.mp4")]
    if not files:
        return "none"
    linked = sum(1 for p in files if p.stat().st_nlink > 1)
    return f"{sum(p.stat().st_size for p in files) / 1e6:.1f} MB in {len(files)} files ({linked} hard links)"


def _cli(root: Path, out: Path, package: Path | None = None) -> float:
    """The CLI in a fresh process; `package`: the folder holding the `lerobot_keyframes` to run (else this one)."""
    env = {**os.environ, "PYTHONPATH": str(package)} if package else None
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lerobot_keyframes.cli", "review", str(root), "--out", str(out)],
                   check=True, capture_output=True, env=env, cwd=package)  # `-m` puts the cwd first on sys.path
    return time.perf_counter() - t0


def _old_package(ref: str, dest: Path) -> Path:
    """The package as of git `ref`, unpacked into `dest` (for a baseline in the same run)."""
    repo = Path(__file__).resolve().parents[1]
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref, "lerobot_keyframes"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def run(root: Path, work: Path, repeats: int, baseline_ref: str | None = None) -> list[dict[str, Any]]:
    from lerobot_keyframes.review import ReviewConfig

    _timed(root, work / "warm", episodes=[0, 1], config=ReviewConfig(workers=1))  # imports, page cache
    rows = []
    for name, config, png in (("in-process (workers=1), baseline", ReviewConfig(workers=1), False),
                              ("process pool (workers=auto)", ReviewConfig(), False),
                              ("process pool (workers=auto) + --png", ReviewConfig(), True)):
        best = min(_timed(root, work / "site", png=png, config=config) for _ in range(repeats))
        jpegs = list((work / "site" / "assets").rglob("*.jpg"))
        rows.append({"name": name, "seconds": best, "mb": _size_mb(work / "site"), "jpegs": len(jpegs),
                     "videos": _videos(work / "site")})
    shutil.rmtree(work / "site", ignore_errors=True)
    if baseline_ref:
        seconds = _cli(root, work / "old-cli", _old_package(baseline_ref, work / "old"))
        rows.append({"name": f"CLI as of `{baseline_ref}` (baseline: static report, no player)", "seconds": seconds,
                     "mb": _size_mb(work / "old-cli"), "videos": _videos(work / "old-cli"),
                     "jpegs": len(list((work / "old-cli" / "assets").rglob("*.jpg")))})
    seconds = _cli(root, work / "cli")
    rows.append({"name": "CLI `lerobot-keyframes review` (fresh process, imports included)",
                 "seconds": seconds, "mb": _size_mb(work / "cli"), "videos": _videos(work / "cli"),
                 "jpegs": len(list((work / "cli" / "assets").rglob("*.jpg")))})
    return rows


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [HEADING, "",
             f"`benchmarks/review.py`: {args.episodes} episodes x 2 cameras (AV1 GOP 2, 320x240 @ 30 fps, "
             f"{args.seconds:g} s episodes, synthetic rows of every style), best of {args.repeats}; "
             f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
             f"{args.load_before:.1f} before the run (above ~1, other jobs shared the machine: compare rows of one "
             f"run), measured {time.strftime('%Y-%m-%d')}.",
             "",
             "| run | wall time | per episode | site size (pages, JPEGs, PNGs) | JPEGs | player videos |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['seconds']:.1f} s | {1000 * r['seconds'] / args.episodes:.0f} ms | "
                     f"{r['mb']:.1f} MB | {r['jpegs']} | {r['videos']} |")
    met = "met" if max(r["seconds"] for r in rows) < 60 else "NOT met"
    lines += ["", f"Target (100 episodes x 2 cameras well under a minute on 2 cores): {met}. "
              "Frames are decoded with one batched `frames_at` call per (episode, camera) at exact parquet "
              "timestamps; the pool gives each worker a contiguous run of episodes so its decoders keep their "
              "files open. Thumbnails are 160 px JPEGs (VQA frames 320 px). Pages are rendered from jinja2 "
              "templates and carry the review workbench (synchronized player, per-row decisions, the episode's "
              "exact parquet timestamps as JSON); the player's mp4 files are hard links into `videos/` (copied "
              "only across file systems; `--videos copy|none`), so they cost no disk on one file system.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0, help="episode length")
    parser.add_argument("--repeats", type=int, default=2, help="best of N for every timing")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the dataset is generated once")
    parser.add_argument("--out", type=Path, default=None, help="markdown file whose section to replace")
    parser.add_argument("--baseline_ref", default=None, help="also time the CLI of the package at this git ref")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]

    root = annotated_dataset(args.cache, args.episodes, args.seconds)
    work = Path(tempfile.mkdtemp(prefix="review-bench-"))
    try:
        rows = run(root, work, args.repeats, args.baseline_ref)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = render(rows, args)
    print(section)
    if args.out:
        write_section(args.out, section)


if __name__ == "__main__":
    main()
