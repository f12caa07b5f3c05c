"""Annotation pipeline overhead: episodes/s with an instant scripted backend (our code alone) and how busy a
fixed-latency backend (50 ms per call, 16 concurrent slots, like a server) is kept; peak RSS.

    python benchmarks/annotate.py [--episodes 48]

Real decoding (sample dataset, AV1, 2 cameras), real staging and real writing; only the model is scripted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported

from lerobot_keyframes.annotate import AnnotateConfig, ExecutorConfig, PlanConfig, run_annotation
from lerobot_keyframes.testing.sample import default_sample_dataset
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers
from lerobot_keyframes.vlm import VlmConfig

responder = plausible_answers


def run(root: Path, backend: ScriptedBackend, parallelism: int) -> dict:
    out = Path(tempfile.mkdtemp()) / "out"
    config = AnnotateConfig(root=root, out=out, plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.5),
                            executor=ExecutorConfig(episode_parallelism=parallelism, max_requests_in_flight=64))
    started = time.perf_counter()
    result = run_annotation(config, VlmConfig(backend="openai", model_id="scripted"), vlm=backend)
    wall = time.perf_counter() - started
    shutil.rmtree(out.parent, ignore_errors=True)
    assert not result.failures and result.validation.ok
    return {"episodes": len(result.episodes), "wall_s": round(wall, 2), "episodes_per_s": round(len(result.episodes) / wall, 2),
            "calls": backend.calls, "busy_fraction": round(backend.busy_seconds / wall, 3),
            # the same, over the annotation phase only (first request to last answer: no set-up, no final write)
            "busy_fraction_annotating": round(backend.busy_seconds / (backend.last_answer - backend.first_request), 3),
            "setup_and_write_s": round(wall - (backend.last_answer - backend.first_request), 2),
            "mean_concurrency": round(backend.slot_seconds / wall, 2), "max_in_flight": backend.max_in_flight}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=48)
    args = parser.parse_args()
    root = default_sample_dataset(episodes=args.episodes, episode_seconds=6.0)
    run(root, ScriptedBackend(responder), 4)  # warm-up: decoders, imports
    rows = {
        "instant backend, 16 episodes in flight": run(root, ScriptedBackend(responder), 16),
        "50 ms backend, 16 slots, 16 episodes in flight": run(
            root, ScriptedBackend(responder, latency=0.05, concurrency=16), 16),
        "50 ms backend, 16 slots, 4 episodes in flight": run(
            root, ScriptedBackend(responder, latency=0.05, concurrency=16), 4),
    }
    rows["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
