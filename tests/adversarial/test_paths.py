"""Symlinks inside a dataset root: nothing outside the root is copied or uploaded; loops are refused first.

The Hugging Face cache layout (snapshots/<rev>/... -> ../../blobs/<sha>) keeps working.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from adversarial_helpers import model_flags, one_error_line, tree_hash

from lerobot_keyframes.dataset.errors import UnsafeLinkError
from lerobot_keyframes.dataset.layout import iter_dataset_files
from lerobot_keyframes.language import write_language

SECRET = b"PRIVATE-NOTES-OUTSIDE-THE-ROOT-7c1f"


def _outside(tmp_path: Path) -> Path:
    private = tmp_path / "home" / "private"
    private.mkdir(parents=True)
    (private / "notes.txt").write_bytes(SECRET)
    return private


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_link_out_of_the_root_is_never_copied_into_an_output(tiny: Path, tmp_path: Path, kind: str) -> None:
    private = _outside(tmp_path)
    if kind == "file":
        (tiny / "meta" / "extra_notes.txt").symlink_to(private / "notes.txt")
    else:
        (tiny / "meta" / "docs").symlink_to(private, target_is_directory=True)
    before = tree_hash(tiny)
    out = tmp_path / "out"
    with pytest.raises(UnsafeLinkError) as info:
        write_language(tiny, {}, out=out, validate=False)
    msg = str(info.value)
    assert "outside the dataset root" in msg and ("extra_notes.txt" in msg or "meta/docs" in msg)
    assert not out.exists() and not any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir())
    assert tree_hash(tiny) == before


def test_annotate_refuses_a_link_out_of_the_root_before_any_model_call(tiny: Path, tmp_path: Path, cli,
                                                                       model_server) -> None:
    private = _outside(tmp_path)
    (tiny / "meta" / "extra_notes.txt").symlink_to(private / "notes.txt")
    before = tree_hash(tiny)
    rc, _, err = cli("annotate", "--root", tiny, "--out", tmp_path / "out", *model_flags(model_server.api_base))
    assert rc == 2 and "meta/extra_notes.txt" in one_error_line(err)
    assert model_server.stats.requests == 0
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.staging").exists()
    assert tree_hash(tiny) == before


@pytest.mark.timeout(120)
def test_a_symlink_loop_is_refused_before_any_work(tiny: Path, tmp_path: Path, cli, model_server) -> None:
    (tiny / "meta" / "loop").symlink_to("..", target_is_directory=True)  # meta/loop/meta/loop/...
    (tiny / "self").symlink_to("self")  # a link to itself
    before = tree_hash(tiny)
    rc, _, err = cli("annotate", "--root", tiny, "--out", tmp_path / "out", *model_flags(model_server.api_base))
    assert rc == 2 and "symlink loop" in one_error_line(err)
    assert model_server.stats.requests == 0 and not (tmp_path / "out.staging").exists()
    assert tree_hash(tiny) == before


def test_links_inside_the_root_are_followed(tiny: Path, tmp_path: Path) -> None:
    (tiny / "meta" / "tasks_alias.parquet").symlink_to("tasks.parquet")
    out = tmp_path / "out"
    write_language(tiny, {}, out=out, validate=False)
    copied = out / "meta" / "tasks_alias.parquet"
    assert copied.is_file() and not copied.is_symlink()
    assert copied.read_bytes() == (tiny / "meta" / "tasks.parquet").read_bytes()


def _as_hf_cache(src: Path, cache: Path, repo: str = "datasets--someone--ds") -> Path:
    """Lay `src` out like huggingface_hub's cache: every file a relative link into the repo's blob store."""
    rev = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / repo / "snapshots" / rev
    blobs = cache / repo / "blobs"
    blobs.mkdir(parents=True)
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(src)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, blobs / digest)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blobs / digest, link.parent))
    return snapshot


def test_the_hf_cache_layout_keeps_working(tiny: Path, tmp_path: Path) -> None:
    snapshot = _as_hf_cache(tiny, tmp_path / "hub")
    files = iter_dataset_files(snapshot)
    assert {p.relative_to(snapshot).as_posix() for p in files} >= {"meta/info.json", "data/chunk-000/file-000.parquet"}
    out = tmp_path / "out"
    write_language(snapshot, {}, out=out, validate=False)
    assert (out / "meta/tasks.parquet").read_bytes() == (tiny / "meta/tasks.parquet").read_bytes()
    assert not (out / "meta/tasks.parquet").is_symlink()
    video = next((out / "videos").rglob("*.mp4"))
    assert video.stat().st_size > 0


def test_a_cache_link_into_another_repo_is_refused(tiny: Path, tmp_path: Path) -> None:
    snapshot = _as_hf_cache(tiny, tmp_path / "hub")
    other = tmp_path / "hub" / "datasets--other--secret" / "blobs"
    other.mkdir(parents=True)
    (other / "abc").write_bytes(SECRET)
    (snapshot / "meta" / "stolen.txt").symlink_to(os.path.relpath(other / "abc", snapshot / "meta"))
    with pytest.raises(UnsafeLinkError, match="meta/stolen.txt"):
        iter_dataset_files(snapshot)
    with pytest.raises(UnsafeLinkError, match="meta/stolen.txt"):
        write_language(snapshot, {}, out=tmp_path / "out", validate=False)
    assert not (tmp_path / "out").exists()


def test_in_place_on_a_symlinked_root_is_refused_before_any_work(tiny: Path, tmp_path: Path, cli,
                                                                 model_server) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(tiny, target_is_directory=True)
    before = tree_hash(tiny)
    rc, _, err = cli("annotate", "--root", alias, "--in_place", "true", *model_flags(model_server.api_base))
    assert rc == 2 and "symlink" in one_error_line(err)
    assert model_server.stats.requests == 0
    assert tree_hash(tiny) == before and not (tmp_path / "alias.staging").exists()


def test_in_place_on_a_hf_cache_snapshot_is_refused_before_any_work(tiny: Path, tmp_path: Path, cli,
                                                                    model_server) -> None:
    snapshot = _as_hf_cache(tiny, tmp_path / "hub")
    before = tree_hash(tmp_path / "hub")
    rc, _, err = cli("annotate", "--root", snapshot, "--in_place", "true", *model_flags(model_server.api_base))
    assert rc == 2 and "Hugging Face cache" in one_error_line(err)
    assert model_server.stats.requests == 0
    assert tree_hash(tmp_path / "hub") == before  # no staging folder beside the snapshot either


def test_dangling_links_and_sibling_loops_are_named_and_skipped_folders_are_not_judged(tiny: Path,
                                                                                        tmp_path: Path) -> None:
    (tiny / "meta" / "gone.json").symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(UnsafeLinkError, match=r"meta/gone.json is a dangling symlink"):
        iter_dataset_files(tiny)
    (tiny / "meta" / "gone.json").unlink()
    (tiny / "a").mkdir()
    (tiny / "b").mkdir()
    (tiny / "a" / "to_b").symlink_to("../b", target_is_directory=True)
    (tiny / "b" / "to_a").symlink_to("../a", target_is_directory=True)
    with pytest.raises(UnsafeLinkError, match="symlink loop"):
        iter_dataset_files(tiny)
    (tiny / "b" / "to_a").unlink()
    (tiny / ".cache").mkdir()
    (tiny / ".cache" / "elsewhere").symlink_to(_outside(tmp_path), target_is_directory=True)
    files = {p.relative_to(tiny).as_posix() for p in iter_dataset_files(tiny, skip=lambda rel: rel == ".cache/")}
    assert "meta/info.json" in files and not any(f.startswith(".cache") for f in files)
    with pytest.raises(UnsafeLinkError, match=".cache/elsewhere"):
        iter_dataset_files(tiny)
