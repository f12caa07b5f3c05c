"""Outputs that are, contain or lie inside the source: every writing command refuses them, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
from adversarial_helpers import model_flags, one_error_line, tree_hash


@pytest.mark.parametrize("where", ["same", "meta", "parent", "link"])
def test_keyframes_refuses_an_output_overlapping_the_source(tiny: Path, tmp_path: Path, cli, where: str) -> None:
    out = {"same": tiny, "meta": tiny / "meta", "parent": tiny.parent, "link": tmp_path / "alias"}[where]
    if where == "link":
        out.symlink_to(tiny, target_is_directory=True)
    before = tree_hash(tiny)
    rc, _, err = cli("keyframes", tiny, "--out", out, "--overwrite", "true", "--policy", "uniform:2")
    assert rc == 2
    line = one_error_line(err)
    assert "source dataset" in line and str(tiny) in line
    assert tree_hash(tiny) == before
    assert (tiny / "meta/info.json").is_file() and (tiny / "videos").is_dir()


def test_keyframes_refuses_pushing_onto_its_source_repo(cli) -> None:
    rc, _, err = cli("keyframes", "someone/dataset", "--push_to_hub", "someone/dataset")
    assert rc == 2 and "is the source dataset" in one_error_line(err)


def test_keyframes_to_a_separate_folder_still_works(tiny: Path, tmp_path: Path, cli) -> None:
    before = tree_hash(tiny)
    rc, out, err = cli("keyframes", tiny, "--out", tmp_path / "kf", "--policy", "uniform:2", "--use_cache", "false")
    assert rc == 0, err
    assert (tmp_path / "kf/keyframes_config.json").is_file() and tree_hash(tiny) == before


@pytest.mark.parametrize("where", ["inside", "same", "staging_inside"])
def test_annotate_refuses_an_overlapping_output_before_any_model_call(tiny: Path, cli, model_server, where: str) -> None:
    flags = {"inside": ["--out", tiny / "annotated"], "same": ["--out", tiny],
             "staging_inside": ["--out", tiny.parent / "annotated", "--staging_dir", tiny / "stage"]}[where]
    before = tree_hash(tiny)
    rc, _, err = cli("annotate", "--root", tiny, *flags, *model_flags(model_server.api_base))
    assert rc == 2
    line = one_error_line(err)
    assert "source dataset" in line and str(tiny) in line
    assert model_server.stats.requests == 0  # refused before the first model call
    assert tree_hash(tiny) == before  # no staging folder was created inside the source
    assert not (tiny.parent / "annotated").exists()


def test_sample_overwrite_never_replaces_a_real_dataset(tiny: Path, tmp_path: Path, cli) -> None:
    (tiny / "ground_truth.json").unlink()  # now it is somebody's dataset, not one this generator wrote
    before = tree_hash(tiny)
    rc, _, err = cli("sample", tiny, "--overwrite", "--episodes", "1", "--cameras", "front", "--width", "32",
                     "--height", "32", "--episode-seconds", "0.6", "--codec", "h264")
    assert rc == 2 and "not a sample dataset" in one_error_line(err)
    assert tree_hash(tiny) == before
    earlier = tmp_path / "earlier"  # an earlier sample is replaced as asked
    for _ in range(2):
        rc, _, err = cli("sample", earlier, "--overwrite", "--episodes", "1", "--cameras", "front", "--width", "32",
                         "--height", "32", "--episode-seconds", "0.6", "--codec", "h264")
        assert rc == 0, err


@pytest.mark.parametrize("where", ["same", "inside"])
def test_review_refuses_to_write_its_site_into_the_dataset(tiny: Path, cli, where: str) -> None:
    before = tree_hash(tiny)
    rc, _, err = cli("review", tiny, "--out", tiny if where == "same" else tiny / "meta")
    assert rc == 2 and "overlaps the source dataset" in one_error_line(err)
    assert tree_hash(tiny) == before


def test_a_backend_that_is_not_installed_is_refused_before_any_work(tiny: Path, tmp_path: Path, cli) -> None:
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    before = tree_hash(tiny)
    rc, _, err = cli("annotate", "--root", tiny, "--out", tmp_path / "out", "--vlm.backend=vllm")
    assert rc == 2 and "pip install 'lerobot_keyframes[vllm]'" in one_error_line(err)
    assert not (tmp_path / "out.staging").exists() and tree_hash(tiny) == before
    # auto_serve needs vLLM too, unless a server already answers on the port
    from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached

    rc, _, err = cli("annotate", "--root", tiny, "--out", tmp_path / "out", "--vlm.backend=openai",
                     f"--vlm.model_id={tiny_qwen_cached('qwen2_5_vl')}",  # a model that exists: the extra is missing
                     "--vlm.auto_serve=true", "--vlm.api_base=http://127.0.0.1:9/v1")
    assert rc == 2 and "'vllm'" in one_error_line(err)


@pytest.mark.parametrize("victim", ["another_dataset", "own_files"])
def test_keyframes_overwrite_replaces_only_an_earlier_keyframes_output(tiny: Path, tiny_root: Path, tmp_path: Path,
                                                                      cli, victim: str) -> None:
    import shutil

    out = tmp_path / "victim"
    if victim == "another_dataset":  # not the source: a second dataset the user points --out at by mistake
        shutil.copytree(tiny_root, out)
    else:
        out.mkdir()
        (out / "thesis.tex").write_text("the user's own file")
    before = tree_hash(out)
    rc, _, err = cli("keyframes", tiny, "--out", out, "--overwrite", "true", "--policy", "uniform:2")
    assert rc == 2
    line = one_error_line(err)
    assert str(out) in line and "keyframes_config.json" in line
    assert tree_hash(out) == before
    earlier = tmp_path / "kf"  # what --overwrite is for: an earlier output of this command
    assert cli("keyframes", tiny, "--out", earlier, "--policy", "uniform:2")[0] == 0
    rc, _, err = cli("keyframes", tiny, "--out", earlier, "--overwrite", "true", "--policy", "uniform:3")
    assert rc == 0, err
    assert '"uniform:3"' in (earlier / "keyframes_config.json").read_text()


def test_keyframes_refuses_a_cache_dir_inside_the_source(tiny: Path, tmp_path: Path, cli) -> None:
    before = tree_hash(tiny)
    rc, _, err = cli("keyframes", tiny, "--out", tmp_path / "kf", "--cache_dir", tiny / "cache", "--policy", "uniform:2")
    assert rc == 2
    line = one_error_line(err)
    assert "--cache_dir" in line and "source dataset" in line
    assert tree_hash(tiny) == before and not (tmp_path / "kf").exists()
    rc, _, err = cli("keyframes", tiny, "--out", tmp_path / "kf", "--cache_dir", tiny.parent, "--policy", "uniform:2")
    assert rc == 0, err  # a cache folder that holds the dataset somewhere below only gains its own files
    assert tree_hash(tiny) == before


@pytest.mark.parametrize("out", [".", "mine", "empty", "a-file", "a-file/out"])
def test_annotate_refuses_an_existing_out_that_is_not_a_dataset_before_any_model_call(
        tiny: Path, tmp_path: Path, cli, model_server, monkeypatch: pytest.MonkeyPatch, out: str) -> None:
    here = tmp_path / "here"
    (here / "mine").mkdir(parents=True)
    (here / "mine" / "notes.txt").write_text("the user's own file")
    (here / "empty").mkdir()
    (here / "a-file").write_text("x")
    monkeypatch.chdir(here / "mine" if out == "." else here)
    before = tree_hash(here)
    rc, _, err = cli("annotate", "--root", tiny, "--out", out, *model_flags(model_server.api_base))
    assert rc == 2
    line = one_error_line(err)  # was: every episode annotated, then "already exists (pass --overwrite ...)",
    if out == "a-file/out":  # was: every episode annotated, then "[Errno 17] File exists"
        assert f"{here / 'a-file'} is a file" in line
    else:
        assert "already exists" in line and "--overwrite" not in line  # a flag annotate does not have
        assert str(here / ("mine" if out == "." else out)) in line
    assert model_server.stats.requests == 0  # refused before the first model call
    assert tree_hash(here) == before and sorted(p.name for p in tmp_path.iterdir()) == ["here", "src"]
