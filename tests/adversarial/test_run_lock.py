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
    assert not _lock_file(out).exists() and not _lock_file(out.parent / "out.staging").exists()  # gone after the run
    assert second.returncode == 2, (second.returncode, second.stdout[-1000:], second.stderr[-2000:])
    message = second.stderr.strip().splitlines()[-1]
    assert "error: another annotation run is using" in message and str(out) in message
    assert f"pid {first.pid}" in message and "started 20" in message
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
        assert set(json.loads(_lock_file(out).read_text())) == {"pid", "host", "started"}  # and holds no secret
        again = h.run_cli(h.annotate_argv(sample_root, out, server.api_base))
    assert again.returncode == 0, again.stderr[-2000:]
    assert not _lock_file(out).exists()  # taken over, then removed at the end
    assert h.validate_ok(out)


def test_lock_in_process_names_holder_and_is_released(tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.run.staging import RunLock, RunLockedError

    out = tmp_path / "o"
    with RunLock(out, tmp_path / "o.staging"):
        with pytest.raises(RunLockedError, match=rf"pid {os.getpid()} on .*, started 20"):
            RunLock(out).acquire()
        with pytest.raises(RunLockedError, match="o.staging"):
            RunLock(tmp_path / "elsewhere", tmp_path / "o.staging").acquire()  # same staging, other out
    with RunLock(out):  # released: free again
        pass


KEY = "sk-lock-7f3e9a1c5b2d-never-on-disk"


def test_lock_files_hold_no_command_line_are_private_and_go_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock file used to hold the whole command line, `--vlm.api_key` included, world-readable; a second
    run printed it in its error, and the files stayed after every run."""
    from lerobot_keyframes.annotate.run.staging import RunLock, RunLockedError

    monkeypatch.setattr(sys, "argv", ["lerobot-keyframes", "annotate", f"--vlm.api_key={KEY}", "--root=x"])
    out = tmp_path / "o"
    with RunLock(out, tmp_path / "o.staging") as lock:
        for path in lock.paths:
            assert KEY not in path.read_text()
            assert set(json.loads(path.read_text())) == {"pid", "host", "started"}
            assert path.stat().st_mode & 0o777 == 0o600
        with pytest.raises(RunLockedError) as info:
            RunLock(out).acquire()
        assert KEY not in str(info.value) and f"pid {os.getpid()}" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # both lock files removed on release


def test_a_lock_file_left_by_an_older_version_is_taken_over_and_tightened(tmp_path: Path) -> None:
    """A stale lock file from before (world-readable, with a command line): the next run takes it over, never
    shows its old contents, rewrites it 0600 and removes it at the end."""
    from lerobot_keyframes.annotate.run.staging import RunLock

    old = tmp_path / ".o.lock"
    old.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "2020", "command": f"x --vlm.api_key={KEY}"}))
    old.chmod(0o644)
    with RunLock(tmp_path / "o") as lock:
        assert KEY not in old.read_text() and old.stat().st_mode & 0o777 == 0o600
        assert json.loads(old.read_text())["pid"] == os.getpid()
        assert lock.paths == [old]
    assert not old.exists()


def test_a_forked_child_never_removes_the_parents_lock(tmp_path: Path) -> None:
    """A worker forked during the run (datasets.map, decoder isolation) inherits the lock object: its exit must
    not remove the file the parent still holds (a second run would then lock a fresh file beside it)."""
    from lerobot_keyframes.annotate.run.staging import RunLock, RunLockedError

    out = tmp_path / "o"
    with RunLock(out) as lock:
        pid = os.fork()
        if pid == 0:  # the child: release its copy, as its garbage collection would
            lock.release()
            os._exit(0)
        os.waitpid(pid, 0)
        assert lock.paths[0].exists()
        with pytest.raises(RunLockedError):
            RunLock(out).acquire()


def test_a_run_that_opened_the_lock_file_as_the_holder_removed_it_starts_over(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Removing the file at release must never let two runs hold a lock. The race, made deterministic: a second
    run opens the lock file, the first run ends (removes the file, drops its flock), then the second run's flock
    succeeds, on a file no one else can see; it must notice and lock a fresh file at the path, so a third run
    is refused."""
    import fcntl

    from lerobot_keyframes.annotate.run.staging import RunLock, RunLockedError

    out = tmp_path / "o"
    first = RunLock(out).acquire()
    real_flock = fcntl.flock
    calls = []

    def flock_after_the_first_run_ends(fd: int, op: int) -> None:
        if not calls:
            first.release()  # between the second run's open and its flock
        calls.append(fd)
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_the_first_run_ends)
    second = RunLock(out).acquire()
    monkeypatch.setattr(fcntl, "flock", real_flock)
    try:
        assert len(calls) == 2  # it started over once
        path, f = second._files[0]
        assert os.path.samestat(os.fstat(f.fileno()), os.stat(path))  # it holds the file others see
        with pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
            RunLock(out).acquire()
    finally:
        second.release()
