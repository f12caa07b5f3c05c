"""kill -9 in the middle of an in-place write (and of an annotate run), then resume: byte for byte the same as a
run that was never interrupted, and never a dataset lerobot cannot load in between."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _b_helpers as h  # noqa: E402

from lerobot_keyframes.testing.fake_openai import FakeOpenAIServer  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
CRASH = "LEROBOT_KEYFRAMES_CRASH_AT"
JOURNAL = ".lerobot_keyframes/journal"

WRITE = """
import sys
from lerobot_keyframes.language import write_language
from lerobot_keyframes.language.synthetic import synthetic_annotations
root = sys.argv[1]
write_language(root, synthetic_annotations(root, rotate_cameras=True), in_place=True,
               extra_files={"meta/annotation_provenance.json": '{"by": "test"}'})
"""


@pytest.fixture(scope="module")
def four_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 episodes, one data file each: a killed shard-by-shard writer leaves shards of both kinds."""
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("k4") / "ds", episodes=4, episode_seconds=1.0,
                               episodes_per_data_file=1)


def _write(root: Path, crash: str | None = None):
    env = {CRASH: crash} if crash else {}
    return h.run_cli([sys.executable, "-c", WRITE, str(root)], **env)


def _consistent(root: Path) -> bool:
    """What lerobot needs: every shard's language columns declared in info.json and vice versa."""
    from lerobot_keyframes.language import validate_dataset

    report = validate_dataset(root)
    return not ({"info_undeclared", "info_declared_missing"} & report.rules("error"))


@pytest.fixture(scope="module")
def reference(four_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("ref") / "ds"
    shutil.copytree(four_shards, root)
    proc = _write(root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return h.file_hashes(root)


@pytest.mark.parametrize("point", ["journal.prepared", "journal.committed", "journal.swap:1", "journal.swap:3"])
def test_in_place_write_killed_then_resumed_is_byte_identical(point: str, four_shards: Path,
                                                              reference: dict[str, str], tmp_path: Path) -> None:
    from lerobot_keyframes.language.writer import recover_interrupted_write

    root = tmp_path / "ds"
    shutil.copytree(four_shards, root)
    pristine = h.file_hashes(root)
    killed = _write(root, crash=point)
    assert killed.returncode == -9, (killed.returncode, killed.stderr[-2000:])
    # the next start finishes (after the commit) or undoes (before it) the interrupted write, first thing
    outcome = recover_interrupted_write(root)
    assert not (root / JOURNAL).exists()
    if point == "journal.prepared":
        assert outcome == "rolled_back" and h.file_hashes(root) == pristine
    else:
        assert outcome == "rolled_forward" and h.file_hashes(root) == reference
    assert _consistent(root)
    # and a resumed write gives exactly what an uninterrupted one gives
    again = _write(root)
    assert again.returncode == 0, again.stderr[-2000:]
    assert h.file_hashes(root) == reference


def test_killed_write_is_recovered_by_the_next_write_itself(four_shards: Path, reference: dict[str, str],
                                                            tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(four_shards, root)
    assert _write(root, crash="journal.swap:2").returncode == -9
    assert (root / JOURNAL).is_dir()
    assert _write(root).returncode == 0
    assert h.file_hashes(root) == reference and not (root / JOURNAL).exists()


@pytest.mark.parametrize("point", ["staging.write:3", "journal.swap:1"])
def test_annotate_in_place_killed_then_resumed(point: str, sample_root: Path, tmp_path: Path) -> None:
    ref, victim = tmp_path / "ref", tmp_path / "victim"
    shutil.copytree(sample_root, ref)
    shutil.copytree(sample_root, victim)
    with FakeOpenAIServer(plausible=True) as server:
        assert h.run_cli(h.annotate_argv(ref, None, server.api_base, "--in_place=true")).returncode == 0
        pristine = h.file_hashes(victim)
        killed = h.run_cli(h.annotate_argv(victim, None, server.api_base, "--in_place=true"), **{CRASH: point})
        assert killed.returncode == -9, killed.stderr[-2000:]
        if point.startswith("staging"):  # killed while annotating: the source is not touched at all
            assert h.file_hashes(victim) == pristine
        else:  # killed while swapping files in: the committed journal is there for the next start
            assert (victim / JOURNAL / "journal.json").is_file()
        resumed = h.run_cli(h.annotate_argv(victim, None, server.api_base, "--in_place=true"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    skip = ("meta/annotation_provenance.json",)
    assert h.file_hashes(victim, skip) == h.file_hashes(ref, skip)
    a, b = h.provenance(victim), h.provenance(ref)
    for key in ("model_id", "modules", "episodes", "failed_episodes", "rows_per_style", "seed"):
        assert a[key] == b[key], key


def test_annotate_into_out_killed_while_staging_then_resumed(sample_root: Path, tmp_path: Path) -> None:
    source_before = h.file_hashes(sample_root)
    with FakeOpenAIServer(plausible=True) as server:
        ref = h.run_cli(h.annotate_argv(sample_root, tmp_path / "ref", server.api_base))
        assert ref.returncode == 0, ref.stderr[-2000:]
        killed = h.run_cli(h.annotate_argv(sample_root, tmp_path / "out", server.api_base), **{CRASH: "staging.write:4"})
        assert killed.returncode == -9
        assert not (tmp_path / "out").exists()  # no half output: it appears whole or not at all
        resumed = h.run_cli(h.annotate_argv(sample_root, tmp_path / "out", server.api_base))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "from staging)" in resumed.stdout, resumed.stdout  # what was staged before the kill is not asked again
    skip = ("meta/annotation_provenance.json",)
    assert h.file_hashes(tmp_path / "out", skip) == h.file_hashes(tmp_path / "ref", skip)
    assert h.file_hashes(sample_root) == source_before
