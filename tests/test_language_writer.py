"""The language writer: one schema for every shard, other columns untouched, atomic, never through symlinks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_keyframes.cli import main as cli_main
from lerobot_keyframes.language import (
    LANGUAGE_COLUMNS,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    SAY_TOOL_SCHEMA,
    EpisodeAnnotations,
    LanguageRow,
    LanguageValidationError,
    UnsafeWriteError,
    read_dataset_annotations,
    validate_dataset,
    write_language,
)
from lerobot_keyframes.language import schema as schema_module
from lerobot_keyframes.language.synthetic import synthetic_annotations


def shards(root: Path) -> list[Path]:
    return sorted((root / "data").glob("*/*.parquet"))


def tree_digest(root: Path) -> dict[str, str]:
    """Path -> sha256 of every file (symlinks followed) plus where each symlink points."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel + " ->"] = os.readlink(path)
        if path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def annotated_multi(multifile_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The multi-file sample (3 data files, image camera) with synthetic rows, in a new root."""
    out = tmp_path_factory.mktemp("lang") / "annotated"
    result = write_language(multifile_root, synthetic_annotations(multifile_root, rotate_cameras=True), out=out)
    assert result.root == out
    return out


def test_every_shard_gets_the_same_declared_schema(annotated_multi: Path):
    files = shards(annotated_multi)
    assert len(files) >= 3
    schemas = [pq.read_schema(f) for f in files]
    assert all(s.equals(schemas[0], check_metadata=True) for s in schemas)
    s = schemas[0]
    assert s.field(LANGUAGE_PERSISTENT).type == schema_module.persistent_arrow_type()
    assert s.field(LANGUAGE_EVENTS).type == schema_module.events_arrow_type()
    features = json.loads(s.metadata[b"huggingface"])["info"]["features"]
    assert list(features) == s.names  # datasets' metadata describes every column


def test_other_columns_values_and_order_are_kept(multifile_root: Path, annotated_multi: Path):
    for src, dst in zip(shards(multifile_root), shards(annotated_multi)):
        before, after = pq.read_table(src), pq.read_table(dst)
        assert after.column_names == before.column_names + list(LANGUAGE_COLUMNS)
        assert after.drop_columns(list(LANGUAGE_COLUMNS)).equals(before)  # image camera bytes included
        assert [after.schema.field(n).type for n in before.column_names] == list(before.schema.types)


def test_one_row_group_per_episode(annotated_multi: Path):
    for path in shards(annotated_multi):
        f = pq.ParquetFile(path)
        eps = f.read(columns=["episode_index"])["episode_index"].to_numpy()
        assert f.metadata.num_row_groups == len(np.unique(eps))
        for g in range(f.metadata.num_row_groups):
            assert len(np.unique(f.read_row_group(g, columns=["episode_index"])["episode_index"].to_numpy())) == 1


def test_rows_land_on_exact_frames_and_read_back(multifile_root: Path, annotated_multi: Path):
    expected = {a.episode_index: a for a in synthetic_annotations(multifile_root, rotate_cameras=True)}
    stored, times = read_dataset_annotations(annotated_multi)
    assert sorted(stored) == sorted(expected)
    for e, ann in expected.items():
        assert sorted(stored[e].persistent, key=repr) == sorted(ann.persistent, key=repr)
        assert sorted(stored[e].events, key=repr) == sorted(ann.events, key=repr)
        assert {r.timestamp for r in stored[e].events} <= {float(t) for t in times[e]}
    # persistent rows are identical on every frame, sorted by (timestamp, style, role)
    table = pq.read_table(shards(annotated_multi)[0], columns=[LANGUAGE_PERSISTENT])
    cells = table[LANGUAGE_PERSISTENT].to_pylist()
    assert all(c == cells[0] for c in cells)
    keys = [(r["timestamp"], r["style"], r["role"]) for r in cells[0]]
    assert keys == sorted(keys)


def test_written_dataset_validates_and_cli_exit_codes(annotated_multi: Path, tmp_path: Path, capsys):
    report = validate_dataset(annotated_multi)
    assert report.ok and not report.warnings, report.format()
    assert cli_main(["validate", str(annotated_multi), "--json", "--single-camera-vqa"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    broken = tmp_path / "broken"
    shutil.copytree(annotated_multi, broken)
    info = json.loads((broken / "meta/info.json").read_text())
    del info["features"][LANGUAGE_EVENTS]
    (broken / "meta/info.json").write_text(json.dumps(info))
    assert cli_main(["validate", str(broken)]) == 1
    assert "info_undeclared" in capsys.readouterr().out


def test_load_dataset_without_features_reads_every_shard(annotated_multi: Path, tmp_path: Path):
    import datasets

    files = [str(p) for p in shards(annotated_multi)]
    total = sum(pq.read_metadata(f).num_rows for f in files)
    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == total
    assert ds.features[LANGUAGE_PERSISTENT] == schema_module.persistent_feature()
    speech = [e for row in ds[LANGUAGE_EVENTS] for e in row if e["style"] is None]
    assert speech and speech[0]["tool_calls"][0]["function"]["arguments"]["text"]
    streamed = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    assert sum(1 for _ in streamed) == total


def test_info_json_keeps_unknown_keys_and_user_tools(sample_root: Path, tmp_path: Path):
    src = tmp_path / "src"
    shutil.copytree(sample_root, src)
    info = json.loads((src / "meta/info.json").read_text())
    user_tool = {"type": "function", "function": {"name": "wave", "parameters": {"type": "object", "properties": {}}}}
    info["my_lab"] = {"operator": "ada", "notes": [1, 2]}
    info["tools"] = [user_tool]
    (src / "meta/info.json").write_text(json.dumps(info, indent=2))
    out = tmp_path / "out"
    write_language(src, synthetic_annotations(src), out=out)
    new = json.loads((out / "meta/info.json").read_text())
    assert list(new)[: len(info)] == list(info)  # key order kept
    assert new["my_lab"] == info["my_lab"]
    assert new["tools"] == [user_tool, SAY_TOOL_SCHEMA]
    for key in info:
        if key not in ("features", "tools"):
            assert new[key] == info[key]
    assert {k: v for k, v in new["features"].items() if k not in LANGUAGE_COLUMNS} == info["features"]
    assert new["features"][LANGUAGE_PERSISTENT] == {"dtype": "language", "shape": [1], "names": None}
    # a second run neither duplicates the say tool nor the declarations
    write_language(out, synthetic_annotations(out), in_place=True)
    again = json.loads((out / "meta/info.json").read_text())
    assert again["tools"] == [user_tool, SAY_TOOL_SCHEMA] and again["features"] == new["features"]


def test_partial_rerun_keeps_other_episodes_rows(sample_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    anns = synthetic_annotations(sample_root)
    write_language(sample_root, anns, out=out)
    assert len(shards(out)) == 1 and len(anns) == 2  # both episodes share one shard
    before, _ = read_dataset_annotations(out)
    new_rows = tuple(replace(r, content=r.content + " now") if r.style == "subtask" else r for r in anns[1].persistent)
    result = write_language(out, [EpisodeAnnotations(1, new_rows, anns[1].events)], in_place=True)
    assert result.episodes_written == (1,) and result.episodes_kept == (0,)
    after, _ = read_dataset_annotations(out)
    assert after[0] == before[0]
    assert {r.content for r in after[1].persistent if r.style == "subtask"} == \
        {r.content for r in new_rows if r.style == "subtask"}
    assert validate_dataset(out).ok


def test_invalid_rows_write_nothing(sample_root: Path, tmp_path: Path):
    anns = synthetic_annotations(sample_root)
    bad = EpisodeAnnotations(0, anns[0].persistent + (LanguageRow("assistant", "x", "subtask", 0.0),), anns[0].events)
    with pytest.raises(LanguageValidationError, match="duplicate_persistent") as info:
        write_language(sample_root, [bad, anns[1]], out=tmp_path / "out")
    assert info.value.report.failed_episodes() == [0]
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
    # validation skipped: semantic rules are waived, but rows that cannot be placed still block
    write_language(sample_root, [bad], out=tmp_path / "lenient", validate=False)
    off_frame = EpisodeAnnotations(0, anns[0].persistent, (replace(anns[0].events[0], timestamp=1e6),))
    with pytest.raises(LanguageValidationError, match="timestamp_not_frame"):
        write_language(sample_root, [off_frame], out=tmp_path / "nope", validate=False)


def test_output_root_rules(sample_root: Path, tmp_path: Path):
    anns = synthetic_annotations(sample_root)
    with pytest.raises(ValueError, match="out="):
        write_language(sample_root, anns)
    with pytest.raises(ValueError, match="overlaps"):
        write_language(sample_root, anns, out=sample_root / "annotated")
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="overwrite"):
        write_language(sample_root, anns, out=tmp_path / "taken")
    write_language(sample_root, anns, out=tmp_path / "taken", overwrite=True)
    assert validate_dataset(tmp_path / "taken").ok
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no temp dirs left behind


def test_videos_are_hard_linked_and_meta_data_copied(sample_root: Path, tmp_path: Path):
    out = tmp_path / "out"
    write_language(sample_root, synthetic_annotations(sample_root), out=out)
    videos = sorted((sample_root / "videos").rglob("*.mp4"))
    assert videos
    for v in videos:
        assert (out / v.relative_to(sample_root)).stat().st_ino == v.stat().st_ino
    for rel in ("meta/info.json", "meta/tasks.parquet", *[str(p.relative_to(sample_root)) for p in shards(sample_root)]):
        assert (out / rel).stat().st_ino != (sample_root / rel).stat().st_ino
    copied = tmp_path / "copied"
    write_language(sample_root, synthetic_annotations(sample_root), out=copied, link_videos=False)
    assert all((copied / v.relative_to(sample_root)).stat().st_ino != v.stat().st_ino for v in videos)


def make_cache_snapshot(src: Path, cache: Path) -> Path:
    """A Hugging Face hub cache layout: files in blobs/, snapshot entries are relative symlinks to them."""
    repo = cache / "datasets--lab--sample"
    snapshot = repo / "snapshots" / ("0" * 40)
    (repo / "blobs").mkdir(parents=True)
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(src)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def test_symlinked_cache_snapshot_is_never_modified(sample_root: Path, tmp_path: Path):
    snapshot = make_cache_snapshot(sample_root, tmp_path / "hub")
    before = tree_digest(tmp_path / "hub")
    anns = synthetic_annotations(snapshot)
    with pytest.raises(UnsafeWriteError, match="Hugging Face cache"):
        write_language(snapshot, anns, in_place=True)
    out = tmp_path / "out"
    write_language(snapshot, anns, out=out)
    assert tree_digest(tmp_path / "hub") == before
    assert not any(p.is_symlink() for p in out.rglob("*"))
    assert validate_dataset(out).ok
    # a second write into the new root replaces files there, never the cache's blobs
    write_language(out, anns, in_place=True)
    assert tree_digest(tmp_path / "hub") == before


def test_symlinked_file_outside_a_cache_refuses_in_place(sample_copy: Path, tmp_path: Path):
    real = tmp_path / "elsewhere-info.json"
    shutil.move(sample_copy / "meta/info.json", real)
    (sample_copy / "meta/info.json").symlink_to(real)
    digest = hashlib.sha256(real.read_bytes()).hexdigest()
    with pytest.raises(UnsafeWriteError, match="symlink"):
        write_language(sample_copy, synthetic_annotations(sample_copy), in_place=True)
    assert hashlib.sha256(real.read_bytes()).hexdigest() == digest


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import pyarrow.parquet as pq
    from lerobot_keyframes.language import shards, writer
    from lerobot_keyframes.utils import files
    from lerobot_keyframes.language.synthetic import synthetic_annotations

    root, where = sys.argv[1], sys.argv[2]
    if where == "before-commit":
        def crash(tmp, dst):
            pq.read_metadata(tmp)  # the temp file is complete; die just before the rename
            os.kill(os.getpid(), signal.SIGKILL)
        files.replace_file = crash
    else:
        calls = []
        real = shards.persistent_cells
        def crash(rows, n):
            calls.append(1)
            if len(calls) == 2:  # the first episode's row group is in the temp file already
                os.kill(os.getpid(), signal.SIGKILL)
            return real(rows, n)
        shards.persistent_cells = crash
    writer.write_language(root, synthetic_annotations(root), in_place=True)
    """
)


@pytest.mark.parametrize("where", ["before-commit", "mid-shard"])
def test_killed_write_leaves_the_old_shard_intact(sample_copy: Path, tmp_path: Path, where: str):
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT)
    before = tree_digest(sample_copy)
    proc = subprocess.run([sys.executable, str(script), str(sample_copy), where], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr
    after = tree_digest(sample_copy)
    leftovers = set(after) - set(before)
    assert all(".tmp-" in name for name in leftovers) and leftovers  # only the dead run's temp file
    assert {k: after[k] for k in before} == before
    for path in shards(sample_copy):
        assert LANGUAGE_PERSISTENT not in pq.read_table(path).column_names
    # loaders globbing *.parquet never see the temp file; the next run cleans it up and succeeds
    assert all(p.name.endswith(".parquet") and ".tmp-" not in p.name for p in shards(sample_copy))
    write_language(sample_copy, synthetic_annotations(sample_copy), in_place=True)
    assert not [p for p in sample_copy.rglob("*") if ".tmp-" in p.name]
    assert validate_dataset(sample_copy).ok


def test_string_json_fallback_for_older_datasets(sample_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """On a stack without datasets.Json, tool calls are JSON strings and loading still works."""
    import datasets

    monkeypatch.setattr(schema_module, "has_json_feature", lambda: False)
    out = tmp_path / "out"
    write_language(sample_root, synthetic_annotations(sample_root), out=out)
    s = pq.read_schema(shards(out)[0])
    assert s.field(LANGUAGE_EVENTS).type.value_type.field("tool_calls").type.value_type == "string"
    stored, _ = read_dataset_annotations(out)
    assert any(r.style is None and r.tool_calls[0]["function"]["name"] == "say" for r in stored[0].events)
    ds = datasets.load_dataset("parquet", data_files=[str(p) for p in shards(out)], split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == sum(pq.read_metadata(p).num_rows for p in shards(out))


def test_image_camera_keeps_image_feature_without_hf_metadata(multifile_root: Path, tmp_path: Path):
    """Shards written without `datasets` metadata: the image camera is still declared as an Image feature."""
    import datasets

    src = tmp_path / "src"
    shutil.copytree(multifile_root, src)
    for path in shards(src):
        pq.write_table(pq.read_table(path).replace_schema_metadata(None), path)
    out = tmp_path / "out"
    write_language(src, synthetic_annotations(src), out=out)
    ds = datasets.load_dataset("parquet", data_files=[str(p) for p in shards(out)], split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert ds.features["observation.images.top"] == datasets.Image()
    assert ds[0]["observation.images.top"].size == (320, 240)
