"""`lerobot-keyframes demo` (the README's main job) runs offline and writes a dataset that validates."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_the_datasets_dataflow_and_validates(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "lerobot_keyframes.cli", "demo"], capture_output=True, text=True,
                          timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[6/6] annotated dataset:" in proc.stdout
    from lerobot_keyframes.language import validate_dataset

    out = tmp_path / "out" / "demo"
    assert validate_dataset(out / "annotated").ok and (out / "keyframes.parquet").is_file()
    # the annotation read its frames from the keyframes map's rows: decoded once, not again
    frames = re.search(r"frames decoded (\d+), taken from keyframe columns (\d+)", proc.stdout)
    assert frames is not None, proc.stdout
    decoded, from_rows = int(frames.group(1)), int(frames.group(2))
    assert from_rows > 0 and decoded < from_rows  # only the cue windows, chosen after the plan, are new
