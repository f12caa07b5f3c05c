"""Ray Data: episodes/s of the keyframe stage with 1 vs 2 CPU workers, on a local Ray instance.

`KeyframeTransform` runs as `map_batches` over the episode table of the sample dataset (AV1 GOP 2,
2 cameras, 320x240 @ 30 fps, 6 s episodes; a few episodes per batch, a fresh transform per run so
nothing is cached), as a task pool of 1 and of 2 workers on `ray.init(num_cpus=2)`. The baseline of the same run
is a plain Python loop over the rows in the driver (no Ray). Ray start-up is timed apart and not counted.

Run: `.venv/bin/python benchmarks/ray_keyframes.py [--episodes 96] [--out docs/benchmarks.md]`
(prints a markdown section; with --out, replaces only the "Ray" section of that file).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from docs_section import write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

HEADING = "## Ray"


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux
        return float("nan")


def run(episodes: int, policy: str, repeats: int, batch_size: int, work: Path) -> dict[str, Any]:
    import ray

    from lerobot_keyframes.dataset import load_episodes
    from lerobot_keyframes.testing.sample import make_sample_dataset
    from lerobot_keyframes.transform import KeyframeTransform, timestamp_column

    load_before = _load()
    root = make_sample_dataset(work / "ds", episodes=episodes, episode_seconds=6.0)
    table = load_episodes(root)
    rows = table.to_list()

    def fresh() -> KeyframeTransform:
        return KeyframeTransform.for_dataset(table, policy=policy)

    fresh().process_episode(rows[-1])  # warm-up: imports, decoder libraries, page cache
    loop_s = float("inf")
    frames = 0
    for _ in range(repeats):
        transform = fresh()
        t0 = time.perf_counter()
        out = [transform.process_episode(r) for r in rows]
        loop_s = min(loop_s, time.perf_counter() - t0)
        frames = sum(len(r[timestamp_column(c)]) for r in out for c in transform.cameras)

    t0 = time.perf_counter()
    temp = tempfile.mkdtemp(prefix="rk_bench_", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1", _temp_dir=temp)
    startup_s = time.perf_counter() - t0
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        ray.data.from_items(rows[:2]).map_batches(fresh(), batch_size=1).materialize()  # warm the workers
        timings = {1: float("inf"), 2: float("inf")}
        for _ in range(repeats):  # interleaved, so a change of the machine's load hits both alike
            for workers in (1, 2):
                ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // batch_size))
                ds = ds.map_batches(fresh(), batch_size=batch_size, compute=ray.data.TaskPoolStrategy(size=workers),
                                    num_cpus=1)
                t0 = time.perf_counter()
                n = ds.materialize().count()
                timings[workers] = min(timings[workers], time.perf_counter() - t0)
                assert n == len(rows)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    return {"episodes": len(rows), "frames": frames, "policy": policy, "loop_s": loop_s, "ray_s": timings,
            "startup_s": startup_s, "load": (load_before, _load()), "batch_size": batch_size}


def render(r: dict[str, Any]) -> str:
    n = r["episodes"]
    one, two = r["ray_s"][1], r["ray_s"][2]
    lines = [
        HEADING,
        "",
        f"`benchmarks/ray_keyframes.py`: the keyframe stage (`KeyframeTransform`, policy `{r['policy']}`) as Ray Data "
        f"`map_batches` over {n} sample episodes (AV1, 2 cameras, 320x240, 6 s; {r['frames']} frames decoded), "
        f"{r['batch_size']} episodes per batch, on `ray.init(num_cpus=2)`; best of the repeats, 1 and 2 workers "
        f"interleaved. Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{r['load'][0]:.1f} before / {r['load'][1]:.1f} after the run"
        + (" (other work shared the machine: compare the rows of one run, not runs)." if r["load"][0] > 1.5 else "."),
        "",
        "| run | seconds | episodes/s | vs 1 worker |",
        "|---|---:|---:|---:|",
        f"| plain loop in the driver (baseline, no Ray) | {r['loop_s']:.2f} | {n / r['loop_s']:.1f} | |",
        f"| Ray Data, 1 CPU worker | {one:.2f} | {n / one:.1f} | 1.00x |",
        f"| Ray Data, 2 CPU workers | {two:.2f} | {n / two:.1f} | {one / two:.2f}x |",
        "",
        f"Ray start-up (`ray.init`, not counted above): {r['startup_s']:.1f} s. The gap between the plain loop and "
        "1 worker is Ray's own cost (scheduling, moving episode rows and keyframes through the object store).",
        *(
            [f"During this run the machine's load ({max(r['load']):.0f}) was above its {os.cpu_count()} cores: "
             + ("other work shared them" if r["load"][0] > 1.5 else
                "Ray's own processes (raylet, GCS, the driver's streaming executor) share them with the decoding "
                "workers")
             + ", so a second worker found only part of a free core and the speed-up above is a floor."]
            if max(r["load"]) > (os.cpu_count() or 1) else []
        ),
        "On free cores decoding is CPU-bound and independent per episode: expect close to linear gains with "
        "workers until the cores or the storage saturate, and batch several short episodes per task.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=96)
    parser.add_argument("--policy", default="fps:2")
    parser.add_argument("--batch_size", type=int, default=8, help="episodes per map_batches call")
    parser.add_argument("--repeats", type=int, default=3, help="best of N for every timing")
    parser.add_argument("--out", type=Path, default=None, help="markdown file whose Ray section to replace")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rk_bench_") as tmp:
        section = render(run(args.episodes, args.policy, args.repeats, args.batch_size, Path(tmp)))
    print(section)
    if args.out is not None:
        write_section(args.out, section)


if __name__ == "__main__":
    main()
