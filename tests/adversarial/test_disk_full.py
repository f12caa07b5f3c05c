"""A write that runs out of room (disk full, a file-size limit) midway: one line naming the file, the dataset
exactly as it was, and nothing left behind that makes the next reader refuse it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from adversarial_helpers import tree_hash

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE")
REPO = Path(__file__).resolve().parents[2]

WRITE = """
import resource, sys
from lerobot_keyframes.language import write_language
from lerobot_keyframes.language.synthetic import synthetic_annotations
root = sys.argv[1]
annotations = synthetic_annotations(root)
# from here on a write past 9000 bytes fails with EFBIG (Python ignores SIGXFSZ), like a full disk with ENOSPC
resource.setrlimit(resource.RLIMIT_FSIZE, (9000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
write_language(root, annotations, in_place=True)
"""


def test_an_in_place_write_that_runs_out_of_room_leaves_the_root_as_it_was(tiny: Path) -> None:
    from lerobot_keyframes.language.journal import check_no_pending_write

    shard = next((tiny / "data").rglob("*.parquet"))
    assert shard.stat().st_size < 9000  # the source fits; its annotated copy does not
    before = tree_hash(tiny)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", WRITE, str(tiny)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert str(shard) in last and "File too large" in last, done.stderr[-2000:]
    assert tree_hash(tiny) == before  # not even an empty journal folder
    check_no_pending_write(tiny, action="review")  # readers and Hub writers take it as it is
