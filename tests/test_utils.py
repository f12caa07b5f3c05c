"""The one-home helpers: atomic files, lazy exports, frame timelines, the after-fork torch guard."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lerobot_keyframes.utils import files
from lerobot_keyframes.utils.files import atomic_path, atomic_write_json, atomic_write_text
from lerobot_keyframes.utils.timeline import (
    evenly_spaced,
    nearest_frame_index,
    nearest_frame_indices,
    split_evenly,
)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "info.json"
    atomic_write_json(target, {"b": 1, "a": "é"})
    assert target.read_text(encoding="utf-8") == '{\n  "a": "é",\n  "b": 1\n}\n'
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["info.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "data.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.parquet"]


def test_atomic_write_replaces_a_symlink_never_writes_through(tmp_path: Path) -> None:
    cache = tmp_path / "cache.md"
    cache.write_text("cached blob")
    link = tmp_path / "README.md"
    link.symlink_to(cache)
    atomic_write_text(link, "card")
    assert not link.is_symlink() and link.read_text() == "card"
    assert cache.read_text() == "cached blob"


def test_kill_before_commit_leaves_old_file_and_only_a_hidden_temp(tmp_path: Path) -> None:
    target = tmp_path / "meta.json"
    target.write_text("old")
    script = textwrap.dedent(f"""
        import os, signal
        from lerobot_keyframes.utils import files
        files.replace_file = lambda tmp, path: os.kill(os.getpid(), signal.SIGKILL)
        files.atomic_write_text({str(target)!r}, "new")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert target.read_text() == "old"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "meta.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".meta.json.tmp-") and not leftovers[0].endswith(".json")
    assert files.temp_path(target).name != leftovers[0]  # unique per write


def test_lazy_exports_resolve_on_access_and_name_the_package() -> None:
    script = textwrap.dedent("""
        import sys
        import lerobot_keyframes as lk
        assert "torch" not in sys.modules and "datasets" not in sys.modules
        assert {"KeyframesConfig", "ReviewConfig", "materialize_messages"} <= set(lk.__all__)
        assert "KeyframeTransform" in dir(lk)
        from lerobot_keyframes.transform import KeyframesConfig
        assert lk.KeyframesConfig is KeyframesConfig
        assert "KeyframesConfig" in vars(lk)  # cached after the first access
        try:
            lk.NoSuchName
        except AttributeError as exc:
            assert str(exc) == "module 'lerobot_keyframes' has no attribute 'NoSuchName'", exc
        else:
            raise SystemExit("no AttributeError")
        import lerobot_keyframes.hub as hub
        assert hub.redact.__module__ == "lerobot_keyframes.utils.hub_errors"  # hub.errors gives it to hub
    """)
    subprocess.run([sys.executable, "-c", script], check=True)


@pytest.mark.parametrize(("t", "expected"), [(-1.0, 0), (0.0, 0), (0.05, 0), (0.1, 1), (0.15, 1), (0.25, 2),
                                             (0.3, 3), (0.35, 3), (9.0, 3)])
def test_nearest_frame_ties_go_to_the_earlier_frame(t: float, expected: int) -> None:
    ts = np.asarray([0.0, 0.1, 0.2, 0.3], dtype=np.float32)
    assert nearest_frame_index(ts, t) == expected
    assert nearest_frame_indices(ts, [t]).tolist() == [expected]


def test_nearest_frame_of_an_empty_timeline() -> None:
    assert nearest_frame_indices([], [0.0, 1.0]).tolist() == [-1, -1]
    with pytest.raises(ValueError, match="empty"):
        nearest_frame_index([], 0.0)


@pytest.mark.parametrize(("n", "k", "expected"), [(10, 0, []), (0, 3, []), (5, 9, [0, 1, 2, 3, 4]),
                                                   (9, 1, [4]), (10, 3, [0, 4, 9]), (11, 2, [0, 10])])
def test_evenly_spaced(n: int, k: int, expected: list[int]) -> None:
    assert evenly_spaced(n, k).tolist() == expected


@pytest.mark.parametrize(("n", "parts", "expected"), [(0, 3, []), (5, 1, [(0, 5)]), (5, 2, [(0, 2), (2, 5)]),
                                                       (2, 4, [(0, 1), (1, 2)])])
def test_split_evenly_covers_everything_once(n: int, parts: int, expected: list[tuple[int, int]]) -> None:
    assert split_evenly(n, parts) == expected


def test_fork_guard_sets_one_torch_thread_in_a_forked_child() -> None:
    script = textwrap.dedent("""
        import os, torch
        from lerobot_keyframes.utils.fork import torch_fork_guard
        torch.set_num_threads(2)
        torch_fork_guard()
        assert torch.get_num_threads() == 2  # the parent is left alone
        pid = os.fork()
        if pid == 0:
            torch_fork_guard()
            os._exit(0 if torch.get_num_threads() == 1 else 3)
        _, status = os.waitpid(pid, 0)
        raise SystemExit(os.waitstatus_to_exitcode(status))
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
