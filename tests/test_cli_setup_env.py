"""scripts/setup_env.sh's FFmpeg check must not fail by chance under `set -o pipefail`.

`ldconfig -p | grep -q libavcodec`: grep -q exits at the first match, ldconfig then dies of SIGPIPE, and
pipefail turns that into "FFmpeg missing" (and an `apt-get install`). A fake ldconfig with a long listing
makes the race certain; the old form is run too, to show the harness catches it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "setup_env.sh"


def _check_pipeline() -> str:
    line = next(ln for ln in SCRIPT.read_text().splitlines() if "ldconfig -p" in ln)
    return re.search(r"! (ldconfig -p[^;]*);", line).group(1).strip()


def _failures(pipeline: str, tmp_path: Path, trials: int = 20) -> int:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "ldconfig").write_text("#!/bin/sh\necho '\tlibavcodec.so.59 (libc6,x86-64) => /usr/lib/libavcodec.so.59'\n"
                                   "seq 1 200000 | sed 's/^/\tlibother.so./'\n")
    (fake / "ldconfig").chmod(0o755)
    script = f"set -uo pipefail; n=0; for i in $(seq {trials}); do {pipeline} || n=$((n+1)); done; echo $n"
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120, check=True)
    return int(out.stdout.strip())


def test_ffmpeg_check_never_fails_when_libavcodec_is_listed(tmp_path: Path) -> None:
    pipeline = _check_pipeline()
    assert "grep -q" not in pipeline
    assert _failures(pipeline, tmp_path) == 0
    assert _failures("ldconfig -p 2>/dev/null | grep -q libavcodec", tmp_path) > 0  # the old check, for contrast
