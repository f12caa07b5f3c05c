"""One run per output: two real `annotate` processes into one --out, and a lock left by kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _b_helpers as h  # noqa: E402

from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock")


def _lock_file(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _holder_pid(out: Path) -> int | None:
    try:
        return int(json.loads(_lock_file(out).read_text() or "{}").get("pid"))
    except (OSError, ValueError, TypeError):
        return None


def test_second_run_into_the_same_out_fails_at_start_naming_the_first(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    source_before = h.file_hashes(sample_root)
    with FakeOpenAIServer(plausible=True, latency=0.15) as server:
        first = subprocess.Popen(h.annotate_argv(sample_root, out, server.api_base, "--seed=1"),
                                 env=h.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=h.REPO)
        try:
            # the first run holds the lock once its record names it (before the fix there is no lock: go on)
            h.wait_for(lambda: _holder_pid(out) == first.pid or first.poll() is not None, timeout=60)
            second = h.run_cli(h.annotate_argv(sample_root, out, server.api_base, "--seed=2", "--vqa.vqa_emission_hz=2"))
            first_out, first_err = first.communicate(timeout=300)
        finally:
            if first.poll() is None:
                first.kill()
    assert first.returncode == 0, first_err[-2000:]
    assert second.returncode == 2, (second.returncode, second.stdout[-1000:], second.stderr[-2000:])
    message = second.stderr.strip().splitlines()[-1]
    assert "error: another annotation run is using" in message and str(out) in message
    assert f"pid {first.pid}" in message and "started 20" in message and "annotate" in message
    # the output is the first run's alone: its seed in the provenance, its VQA rate's rows
    prov = h.provenance(out)
    assert prov["seed"] == 1
    assert h.validate_ok(out)
    assert h.file_hashes(sample_root) == source_before


def test_lock_of_a_run_killed_with_sigkill_does_not_block_the_next(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(plausible=True, latency=0.3) as server:
        victim = subprocess.Popen(h.annotate_argv(sample_root, out, server.api_base), env=h.cli_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=h.REPO)
        assert h.wait_for(lambda: _holder_pid(out) == victim.pid, timeout=60), "the run never took its lock"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(30)
        assert _lock_file(out).exists()  # the file stays; the kernel dropped the flock with the process
        again = h.run_cli(h.annotate_argv(sample_root, out, server.api_base))
    assert again.returncode == 0, again.stderr[-2000:]
    assert h.validate_ok(out)


def test_lock_in_process_names_holder_and_is_released(tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.staging import RunLock, RunLockedError

    out = tmp_path / "o"
    with RunLock(out, tmp_path / "o.staging"):
        with pytest.raises(RunLockedError, match=rf"pid {os.getpid()} on .*started .*command"):
            RunLock(out).acquire()
        with pytest.raises(RunLockedError, match="o.staging"):
            RunLock(tmp_path / "elsewhere", tmp_path / "o.staging").acquire()  # same staging, other out
    with RunLock(out):  # released: free again
        pass
