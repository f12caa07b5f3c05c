"""Datasets written by lerobot_keyframes load, resolve and validate in lerobot 0.6.1 itself.

Runs only in the lerobot venv (scripts/lerobot_tier.sh); lerobot is imported inside the tests so the
module collects (and is skipped) in the main venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_keyframes.dataset import load_episodes
from lerobot_keyframes.language import (
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    EpisodeAnnotations,
    ValidatorConfig,
    read_dataset_annotations,
    validate_dataset,
    write_language,
)
from lerobot_keyframes.language.schema import decode_stored_rows, is_say_tool
from lerobot_keyframes.language.synthetic import synthetic_annotations
from lerobot_keyframes.testing.sample import make_sample_dataset

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Annotated:
    name: str
    source: Path  # the sample dataset before annotation
    root: Path  # the annotated copy
    rotate_cameras: bool  # one camera's VQA per frame (what released lerobot 0.6.x can train on)


SAMPLES = {
    # AV1 like lerobot records, two episodes per data file, mp4 files rolled over, cameras rotated per tick
    "av1": dict(codec="av1", episodes=3, episode_seconds=2.0, max_video_file_mb=0.02, episodes_per_data_file=2,
                rotate=True),
    # H.264, one data file per episode, an image camera stored in the parquet, VQA on every camera per tick
    "h264": dict(codec="h264", episodes=3, episode_seconds=2.0, max_video_file_mb=0.01, episodes_per_data_file=1,
                 image_camera="top", rotate=False),
}


@pytest.fixture(scope="module", params=sorted(SAMPLES))
def annotated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Annotated:
    spec = dict(SAMPLES[request.param])
    rotate = spec.pop("rotate")
    base = tmp_path_factory.mktemp(request.param)
    src = make_sample_dataset(base / "src", width=160, height=120, **spec)
    out = base / "annotated"
    # VQA on the image camera too, on purpose (lerobot's renderer reads it; see test_language_render_...)
    write_language(src, synthetic_annotations(src, rotate_cameras=rotate, image_cameras=True), out=out,
                   validator_config=ValidatorConfig(single_camera_vqa_per_frame=rotate, vqa_on_image_cameras=True))
    assert len(list((out / "data").glob("*/*.parquet"))) > 1  # multi-file
    return Annotated(request.param, src, out, rotate)


def _camera_keys(root: Path) -> list[str]:
    info = json.loads((root / "meta/info.json").read_text())
    return [k for k, f in info["features"].items() if f["dtype"] in ("video", "image")]


def _frames_hf(root: Path):
    """lerobot's own view of the data shards (its features, its loader), without video decoding."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/conformance", root=root)
    return ds, ds.hf_dataset.select_columns(["timestamp", "episode_index", LANGUAGE_PERSISTENT, LANGUAGE_EVENTS])


def _scalar(value) -> float:
    return float(value.item() if hasattr(value, "item") else value)


def test_installed_beside_lerobot_with_its_pins():
    import importlib.metadata as md

    import datasets
    import huggingface_hub
    from packaging.requirements import Requirement

    assert md.version("lerobot") == "0.6.1"
    # lerobot's pins, not our CI stack: our ranges must allow them
    assert int(datasets.__version__.split(".")[0]) < 5
    assert int(huggingface_hub.__version__.split(".")[0]) < 2
    for req in md.requires("lerobot_keyframes") or []:
        r = Requirement(req)
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue
        assert r.specifier.contains(md.version(r.name), prereleases=True), f"{r} vs {md.version(r.name)}"


def test_lerobot_loads_and_iterates_every_frame(annotated: Annotated):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/conformance", root=annotated.root)
    info = json.loads((annotated.root / "meta/info.json").read_text())
    assert len(ds) == info["total_frames"] and ds.num_episodes == info["total_episodes"]
    assert any(is_say_tool(t) for t in ds.meta.tools)
    stored, times = read_dataset_annotations(annotated.root)
    cameras = _camera_keys(annotated.root)
    for i in range(len(ds)):
        item = ds[i]
        for cam in cameras:
            assert item[cam].ndim == 3 and item[cam].shape[0] == 3
        ep = int(item["episode_index"])
        t = _scalar(item["timestamp"])
        assert decode_stored_rows(item[LANGUAGE_PERSISTENT]) == sorted(
            stored[ep].persistent, key=lambda r: (r.timestamp, r.style or "", r.role, r.camera or "", r.content or ""))
        events = decode_stored_rows(item[LANGUAGE_EVENTS], timestamp=t)
        assert sorted(map(repr, events)) == sorted(repr(r) for r in stored[ep].events if r.timestamp == t)
        assert item["task"]


def test_load_dataset_without_features_reads_all_shards(annotated: Annotated, tmp_path: Path):
    import datasets
    from lerobot.datasets.language import language_events_column_feature, language_persistent_column_feature

    files = sorted(str(p) for p in (annotated.root / "data").glob("*/*.parquet"))
    total = sum(pq.read_metadata(f).num_rows for f in files)
    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == total
    assert ds.features[LANGUAGE_PERSISTENT] == language_persistent_column_feature()
    assert ds.features[LANGUAGE_EVENTS] == language_events_column_feature()
    streamed = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    assert sum(1 for _ in streamed) == total


def test_language_render_resolves_every_frame(annotated: Annotated):
    from lerobot.configs.recipe import DEFAULT_BINDINGS
    from lerobot.datasets import language_render as lr

    _, frames = _frames_hf(annotated.root)
    cameras = _camera_keys(annotated.root)
    # the h264 sample carries VQA on its image camera on purpose (lerobot's renderer reads it); lerobot-annotate's
    # StagingValidator would reject those rows, and so does ours unless told otherwise
    report = validate_dataset(annotated.root, config=ValidatorConfig(single_camera_vqa_per_frame=annotated.rotate_cameras,
                                                                     vqa_on_image_cameras=True))
    assert report.ok, report.format()
    assert report.rules("warning") <= {"vqa_multi_camera"}, report.format()
    close = {i.episode_index for i in report.warnings if i.rule == "persistent_too_close"}
    ambiguous_default_vqa = 0
    seen = {"vqa": 0, "speech": 0, "interjection": 0}
    for idx, row in enumerate(frames):
        t = _scalar(row["timestamp"])
        ep = int(_scalar(row["episode_index"]))
        p, e = row[LANGUAGE_PERSISTENT], row[LANGUAGE_EVENTS]
        for style in ("subtask", "plan", "memory", "motion"):
            lr.active_at(t, persistent=p, style=style)
            if ep not in close:  # our validator warns exactly where emitted_at would be ambiguous
                lr.emitted_at(t, persistent=p, events=e, style=style)
        assert lr.active_at(t, persistent=p, style="subtask") is not None
        assert lr.active_at(t, persistent=p, style="plan") is not None
        if lr.emitted_at(t, persistent=p, events=e, style="interjection") is not None:
            seen["interjection"] += 1
        if lr.emitted_at(t, persistent=p, events=e, role="assistant", tool_name="say") is not None:
            seen["speech"] += 1
        for cam in cameras:
            q = lr.emitted_at(t, persistent=p, events=e, style="vqa", role="user", camera=cam)
            a = lr.emitted_at(t, persistent=p, events=e, style="vqa", role="assistant", camera=cam)
            assert (q is None) == (a is None)
            seen["vqa"] += a is not None
        assert lr._resolve_task(None, None, persistent=p, sample_idx=idx)
        # the bindings every training sample resolves, exactly as lerobot 0.6.1 declares them
        for name, spec in DEFAULT_BINDINGS.items():
            try:
                lr._resolve_spec(spec, persistent=p, events=e, t=t)
            except ValueError as exc:
                assert "Ambiguous" in str(exc) and name in ("vqa", "vqa_query") and not annotated.rotate_cameras
                ambiguous_default_vqa += 1
    assert all(seen.values()), seen
    # released 0.6.1 cannot resolve VQA from two cameras on one frame; rotating cameras avoids it
    assert (ambiguous_default_vqa > 0) == (not annotated.rotate_cameras)


def _rows_by_module(ann: EpisodeAnnotations) -> dict[str, list[dict]]:
    return {
        "plan": [r.to_dict() for r in ann.persistent],
        "interjections": [r.to_dict() for r in ann.events if r.style in ("interjection", None)],
        "vqa": [r.to_dict() for r in ann.events if r.style == "vqa"],
    }


def _normalized(anns: dict[int, EpisodeAnnotations]) -> dict[int, tuple[list[str], list[str]]]:
    """Rows as canonical JSON (lerobot's staging sorts the keys inside tool calls)."""
    def canon(rows):
        return sorted(json.dumps({**r.to_dict(), "question_type": None}, sort_keys=True) for r in rows)

    return {e: (canon(a.persistent), canon(a.events)) for e, a in anns.items()}


def test_staging_validator_and_lerobot_writer_agree(annotated: Annotated, tmp_path: Path):
    from lerobot.annotations.steerable_pipeline.reader import iter_episodes
    from lerobot.annotations.steerable_pipeline.staging import EpisodeStaging
    from lerobot.annotations.steerable_pipeline.validator import StagingValidator
    from lerobot.annotations.steerable_pipeline.writer import LanguageColumnsWriter

    stored, _ = read_dataset_annotations(annotated.root)
    staging_dir = tmp_path / "staging"
    for e, ann in stored.items():
        for module, rows in _rows_by_module(ann).items():
            EpisodeStaging(staging_dir, e).write(module, rows)
    records = list(iter_episodes(annotated.root))
    validator = StagingValidator(dataset_camera_keys=tuple(_camera_keys(annotated.root)))
    report = validator.validate(records, staging_dir)
    assert report.ok, report.errors
    assert report.episodes_checked == len(stored)

    # lerobot's own writer turns the same staging into the same rows, as our reader reads them back
    theirs = tmp_path / "lerobot-written"
    shutil.copytree(annotated.source, theirs)
    LanguageColumnsWriter().write_all(list(iter_episodes(theirs)), staging_dir, theirs)
    back, _ = read_dataset_annotations(theirs)
    assert _normalized(back) == _normalized(stored)

    # re-annotating one episode of lerobot's output keeps the others' rows and unifies the shard schemas
    out = tmp_path / "ours-over-theirs"
    first = min(stored)
    result = write_language(theirs, [stored[first]], out=out,  # the h264 sample's image-camera VQA, on purpose
                            validator_config=ValidatorConfig(single_camera_vqa_per_frame=annotated.rotate_cameras,
                                                             vqa_on_image_cameras=True))
    assert result.episodes_written == (first,) and set(result.episodes_kept) == set(stored) - {first}
    again, _ = read_dataset_annotations(out)
    assert _normalized(again) == _normalized(stored)
    schemas = [pq.read_schema(p) for p in sorted((out / "data").glob("*/*.parquet"))]
    assert all(s.equals(schemas[0], check_metadata=True) for s in schemas)
    assert "mixed_shard_schemas" not in validate_dataset(out).rules()


def test_dataset_recorded_by_lerobot_is_annotated_and_loads_back(tmp_path: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.state": {"dtype": "float32", "shape": (4,), "names": ["x", "y", "z", "gripper"]},
        "action": {"dtype": "float32", "shape": (4,), "names": ["x", "y", "z", "gripper"]},
        "observation.images.cam": {"dtype": "video", "shape": (48, 64, 3), "names": ["height", "width", "channels"]},
    }
    root = tmp_path / "recorded"
    rec = LeRobotDataset.create("local/recorded", fps=30, features=features, root=root, use_videos=True)
    rng = np.random.default_rng(0)
    for _ in range(2):
        for _ in range(36):
            rec.add_frame({
                "observation.state": rng.random(4, dtype=np.float32),
                "action": rng.random(4, dtype=np.float32),
                "observation.images.cam": (rng.random((48, 64, 3)) * 255).astype(np.uint8),
                "task": "pick up the cube",
            })
        rec.save_episode()
    rec.finalize()

    episodes = load_episodes(root)  # our reader on lerobot's own layout
    assert episodes["length"] == [36, 36] and episodes["task"] == ["pick up the cube"] * 2
    anns = synthetic_annotations(root)
    out = tmp_path / "annotated"
    write_language(root, anns, out=out)
    assert validate_dataset(out).ok

    ds = LeRobotDataset("local/recorded", root=out)
    assert len(ds) == 72
    stored, _ = read_dataset_annotations(out)
    assert _normalized(stored) == _normalized({a.episode_index: a for a in anns})
    for i in range(len(ds)):
        item = ds[i]
        assert item["observation.images.cam"].shape == (3, 48, 64)
        assert any(r["style"] == "subtask" for r in item[LANGUAGE_PERSISTENT])


MAIN_VENV_SCRIPT = textwrap.dedent(
    """
    import sys
    from lerobot_keyframes.language import write_language
    from lerobot_keyframes.language.synthetic import synthetic_annotations
    from lerobot_keyframes.testing.sample import make_sample_dataset
    src = make_sample_dataset(sys.argv[1], episodes=2, episode_seconds=1.5, width=160, height=120,
                              episodes_per_data_file=1)
    write_language(src, synthetic_annotations(src, rotate_cameras=True), out=sys.argv[2])
    import datasets; print(datasets.__version__)
    """
)


def test_written_with_the_main_stack_loads_in_lerobot(tmp_path: Path):
    """Annotated with datasets 5 / pyarrow json in the main venv, trained on with lerobot 0.6.1."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    python = os.environ.get("LEROBOT_KEYFRAMES_MAIN_PYTHON") or str(REPO / ".venv/bin/python")
    if not Path(python).exists():
        pytest.skip(f"no main venv at {python} (set LEROBOT_KEYFRAMES_MAIN_PYTHON)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run([python, "-c", MAIN_VENV_SCRIPT, str(tmp_path / "src"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ds = LeRobotDataset("local/main-stack", root=tmp_path / "out")
    for i in range(len(ds)):
        item = ds[i]
        assert item[LANGUAGE_PERSISTENT]
    assert validate_dataset(tmp_path / "out", config=ValidatorConfig(single_camera_vqa_per_frame=True)).ok
    print(f"written with datasets {proc.stdout.strip()} in {python}", file=sys.stderr)


@pytest.mark.parametrize("fps", [10, 30, 50])
def test_too_close_warning_predicts_emitted_at_ambiguity(fps: int):
    """Our `persistent_too_close` warning fires exactly when lerobot's emitted_at fails on some frame."""
    from lerobot.datasets import language_render as lr

    from lerobot_keyframes.language import LanguageRow, validate_episode

    ts = (np.arange(3 * fps) / fps).astype(np.float32)
    for gap in range(1, fps // 2):
        a, b = fps, fps + gap
        rows = (LanguageRow("assistant", "first", "subtask", float(ts[0])),
                LanguageRow("assistant", "one", "motion", float(ts[a])),
                LanguageRow("assistant", "two", "motion", float(ts[b])))
        report = validate_episode(EpisodeAnnotations(0, rows), ts)
        warned = "persistent_too_close" in report.rules("warning")
        stored = [r.to_persistent() for r in rows]
        ambiguous = False
        for t in ts:
            try:
                lr.emitted_at(float(t), persistent=stored, events=[], style="motion")
            except ValueError:
                ambiguous = True
        assert warned == ambiguous, (fps, gap, report.format())
