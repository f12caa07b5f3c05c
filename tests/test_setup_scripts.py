"""scripts/venv_disk.sh: the set-up's disk check, tier-venv pruning and locking (a full disk failed a CI run)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

HELPERS = Path(__file__).resolve().parents[1] / "scripts" / "venv_disk.sh"


def run_helper(snippet: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "{HELPERS}"; {snippet}'],
        capture_output=True, text=True, timeout=60,
    )


def test_require_free_disk_names_what_and_where(tmp_path: Path) -> None:
    ok = run_helper(f'require_free_disk "{tmp_path}/not/yet/made" 0 "a venv"; echo passed')
    assert ok.returncode == 0 and "passed" in ok.stdout
    full = run_helper(f'require_free_disk "{tmp_path}/venv" 100000 "the virtualenv X"; echo passed')
    assert full.returncode == 1 and "passed" not in full.stdout
    assert "the virtualenv X" in full.stderr and "100000 GB" in full.stderr and str(tmp_path) in full.stderr


def test_prune_keeps_the_current_venv_and_any_in_use(tmp_path: Path) -> None:
    venvs = tmp_path / "venvs"
    for name in ("vllm-old", "vllm-busy", "vllm-current", "lerobot-other"):
        (venvs / name / "bin").mkdir(parents=True)
        (venvs / f".{name}.lock").touch()
    # A test run of vllm-busy holds its lock shared, as the tier script does through pytest.
    holder = subprocess.Popen(["flock", "-s", str(venvs / ".vllm-busy.lock"), "sleep", "30"])
    try:
        for _ in range(100):  # wait until the holder has the lock
            if subprocess.run(["flock", "-n", str(venvs / ".vllm-busy.lock"), "true"]).returncode:
                break
            time.sleep(0.05)
        result = run_helper(f'prune_tier_venvs "{tmp_path}" vllm "{venvs}/vllm-current"')
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in venvs.iterdir() if p.is_dir()) == ["lerobot-other", "vllm-busy", "vllm-current"]
    assert "removing the outdated" in result.stdout and "vllm-old" in result.stdout
    assert not (venvs / ".vllm-old.lock").exists()


def test_use_tier_venv_builds_once_and_holds_the_lock_shared(tmp_path: Path) -> None:
    venv, lock = tmp_path / "vllm-abc", tmp_path / ".vllm-abc.lock"
    setup = (f'venv="{venv}"; stamp="$venv/stamp"; stamp_value=abc; '
             'build_venv() { echo BUILT; mkdir -p "$venv/bin"; ln -sf "$(type -P true)" "$venv/bin/python"; '
             'echo abc > "$stamp"; }; ')
    first = run_helper(setup + f'use_tier_venv "{lock}"')
    assert first.returncode == 0 and first.stdout.count("BUILT") == 1, first.stderr
    # stamp current: no rebuild; while this shell lives, the lock is held shared (exclusive is refused)
    second = run_helper(setup + f'use_tier_venv "{lock}"; flock -n -s "{lock}" true && echo SHARED_OK; '
                        f'flock -n -x "{lock}" true || echo EXCLUSIVE_REFUSED')
    assert second.returncode == 0, second.stderr
    assert "BUILT" not in second.stdout and "SHARED_OK" in second.stdout and "EXCLUSIVE_REFUSED" in second.stdout
    (venv / "stamp").write_text("old\n")  # requirements changed: rebuilt
    third = run_helper(setup + f'use_tier_venv "{lock}"')
    assert third.stdout.count("BUILT") == 1
