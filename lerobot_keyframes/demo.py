"""The README's main job: everything the package does, offline, on the embedded sample dataset."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def run_demo(out: Path) -> int:
    """Generate (or reuse) the sample dataset, read it, and run every stage that exists so far."""
    from .dataset import load_episodes
    from .dataset.summary import format_summary, summarize
    from .testing.sample import default_sample_dataset

    root = default_sample_dataset()
    print(f"[1] sample dataset: {root}")
    print(format_summary(summarize(root)))
    episodes = load_episodes(root)
    print(f"[2] episode table: {episodes.num_rows} episodes, columns {episodes.column_names}")
    out.mkdir(parents=True, exist_ok=True)
    episodes.to_parquet(str(out / "episodes.parquet"))
    print(f"    written to {out / 'episodes.parquet'}")
    return 0
