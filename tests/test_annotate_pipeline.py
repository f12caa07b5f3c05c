"""The annotation pipeline end to end on the sample dataset, with a scripted backend (real decoding, real writer)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lerobot_keyframes.annotate import run_annotation
from lerobot_keyframes.annotate.config import AnnotateConfig, InterjectionsConfig, PlanConfig, VqaConfig
from lerobot_keyframes.annotate.context import AnnotationError
from lerobot_keyframes.language import read_dataset_annotations as _read
from lerobot_keyframes.language import validate_dataset
from lerobot_keyframes.testing.scripted import ScriptedBackend, count_images, plausible_answers, prompt_text
from lerobot_keyframes.vlm.config import VlmConfig


def read_dataset_annotations(root: Path) -> dict:
    return _read(root)[0]


VLM = VlmConfig(backend="openai", model_id="scripted-qwen2.5-vl")


def oracle(conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
    """Plausible answers; every visual prompt must go out with its images."""
    assert count_images(conversation) > 0 or "Write" in prompt_text(conversation)
    return plausible_answers(conversation, schema)


def _config(root: Path, out: Path, **kw: Any) -> AnnotateConfig:
    return AnnotateConfig(root=root, out=out, plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
                          interjections=InterjectionsConfig(interjection_min_t=0.1), **kw)


def test_full_run_writes_valid_language_columns(sample_root: Path, tmp_path: Path) -> None:
    backend = ScriptedBackend(oracle)
    out = tmp_path / "out"
    result = run_annotation(_config(sample_root, out), VLM, vlm=backend)
    assert result.failures == {}
    assert result.validation.ok, result.validation.format()
    report = validate_dataset(out)
    assert report.ok, report.format()
    anns = read_dataset_annotations(out)
    assert sorted(anns) == [0, 1]
    styles = {r.style for a in anns.values() for r in a.rows}
    assert {"subtask", "plan", "memory", "task_aug", "interjection", "vqa", None} <= styles
    assert result.rows_per_style["subtask"] >= 4
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"]["language_persistent"]["dtype"] == "language"
    assert any(t["function"]["name"] == "say" for t in info["tools"])
    provenance = json.loads((out / "meta/annotation_provenance.json").read_text())
    assert provenance["model_id"] == VLM.model_id and provenance["episodes"] == 2
    # the source dataset is untouched
    assert "language_persistent" not in json.loads((sample_root / "meta/info.json").read_text())["features"]
    assert result.frames["reused"] > 0  # modules asking for the same keyframes share one decode
    assert "shared between modules" in result.summary()


def test_each_frame_is_decoded_once_per_episode_with_or_without_the_frame_cache(sample_root: Path,
                                                                               tmp_path: Path) -> None:
    from lerobot_keyframes.annotate.config import QualityConfig
    from lerobot_keyframes.frames import make_frame_provider

    results, providers = [], []
    for name, cache_mb in (("a", 64), ("b", 0)):  # quality checks off: they sample frames of their own
        config = _config(sample_root, tmp_path / name, frame_cache_mb=cache_mb, quality=QualityConfig(enabled=False))
        provider = make_frame_provider(sample_root, cache_mb=cache_mb)
        results.append(run_annotation(config, VLM, vlm=ScriptedBackend(oracle), provider=provider))
        providers.append(provider.stats())
    for result, stats in zip(results, providers):
        assert stats.cache.hits == 0  # nothing is asked of the provider twice
        assert sum(stats.decoded_frames.values()) == result.frames["decoded"] > 0
    assert results[0].frames == results[1].frames
    assert read_dataset_annotations(tmp_path / "b") == read_dataset_annotations(tmp_path / "a")


def test_resume_skips_finished_work_and_partial_rerun_keeps_other_episodes(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = ScriptedBackend(oracle)
    run_annotation(_config(sample_root, out), VLM, vlm=first)
    before = read_dataset_annotations(out)
    assert first.calls > 0

    again = ScriptedBackend(oracle)
    result = run_annotation(_config(sample_root, out), VLM, vlm=again)
    assert again.calls == 0  # everything came from staging
    assert sum(result.modules_reused.values()) == 6 and not result.modules_run
    assert read_dataset_annotations(out) == before

    # recompute episode 1 only, with different VQA settings: episode 0 keeps its rows untouched
    partial = ScriptedBackend(oracle)
    cfg = _config(sample_root, out, only_episodes=(1,), force=True)
    run_annotation(cfg, VLM, vlm=partial)
    after = read_dataset_annotations(out)
    assert partial.calls > 0
    assert after[0] == before[0]
    assert sorted(after) == [0, 1]


def test_wrong_answers_are_cleaned_or_rejected(sample_root: Path, tmp_path: Path) -> None:
    def sloppy(conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
        props = (schema or {}).get("properties", {})
        if "subtasks" in props:  # overlapping, unsorted, duplicated spans inside the window
            return {"subtasks": [{"text": "place it", "start": 1.2, "end": 0.4},
                                 {"text": "grab it", "start": 0.0, "end": 1.5},
                                 {"text": "grab it", "start": 0.1, "end": 0.9}]}
        return oracle(conversation, schema)

    out = tmp_path / "out"
    result = run_annotation(_config(sample_root, out), VLM, vlm=ScriptedBackend(sloppy))
    assert result.failures == {} and validate_dataset(out).ok
    spans = [r for r in read_dataset_annotations(out)[0].persistent if r.style == "subtask"]
    assert [r.content for r in spans] == ["grab it", "place it"]

    def bad_vqa(conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
        if "answer" in (schema or {}).get("properties", {}):
            return {"question": "where?", "answer": {"bbox": "nope"}}  # wrong shape
        return oracle(conversation, schema)

    out2 = tmp_path / "out2"
    result = run_annotation(_config(sample_root, out2), VLM, vlm=ScriptedBackend(bad_vqa))
    assert set(result.failures) == {0, 1}
    assert all("module vqa" in reason and "schema_mismatch" in reason for reason in result.failures.values())
    with pytest.raises(AnnotationError, match="module vqa.*schema_mismatch"):
        run_annotation(_config(sample_root, tmp_path / "out3", on_error="stop"), VLM, vlm=ScriptedBackend(bad_vqa))


def test_missing_video_fails_that_episode_with_a_clear_error(sample_copy: Path, tmp_path: Path) -> None:
    video = next((sample_copy / "videos/observation.images.wrist").rglob("*.mp4"))
    video.unlink()
    cfg = _config(sample_copy, tmp_path / "out", vqa=VqaConfig(rotate_cameras=False))
    result = run_annotation(cfg, VLM, vlm=ScriptedBackend(oracle))
    assert set(result.failures) == {0, 1}
    reason = result.failures[0]
    assert "observation.images.wrist" in reason and video.name in reason and "episode 0" in reason


def test_an_unknown_camera_key_is_an_error_before_any_work(sample_root: Path, tmp_path: Path) -> None:
    backend = ScriptedBackend(oracle)
    with pytest.raises(ValueError, match=r"camera_key='observation.images.top' is not a camera .*front"):
        run_annotation(_config(sample_root, tmp_path / "out"), VLM.replace(camera_key="observation.images.top"),
                       vlm=backend)
    assert backend.calls == 0 and not (tmp_path / "out").exists()
    wrist = run_annotation(_config(sample_root, tmp_path / "wrist"), VLM.replace(camera_key="observation.images.wrist"),
                           vlm=ScriptedBackend(oracle))
    assert not wrist.failures


def test_invalid_rows_are_reported_and_nothing_is_written(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_annotation(_config(sample_root, out), VLM, vlm=ScriptedBackend(oracle))
    before = {p: p.read_bytes() for p in (out / "data").rglob("*.parquet")}
    staged = out.with_name("out.staging") / "episode-000001" / "plan.jsonl"
    lines = staged.read_text().splitlines()
    row = json.loads(lines[1])
    row["timestamp"] = 0.0123  # not a frame time of the episode
    staged.write_text("\n".join([lines[0], json.dumps(row), *lines[2:]]) + "\n")
    result = run_annotation(_config(sample_root, out), VLM, vlm=ScriptedBackend(oracle))
    assert not result.validation.ok
    assert any(i.episode_index == 1 for i in result.validation.errors)
    assert {p: p.read_bytes() for p in (out / "data").rglob("*.parquet")} == before


def test_vqa_asks_about_video_cameras_only_unless_told(multifile_root: Path, tmp_path: Path) -> None:
    """lerobot 0.6.1's validator rejects VQA on an image-stored camera: annotate and validate agree."""
    from lerobot_keyframes.language.validator import ValidatorConfig

    result = run_annotation(_config(multifile_root, tmp_path / "a"), VLM, vlm=ScriptedBackend(oracle))
    assert result.failures == {} and result.validation.ok, result.validation.format()
    cams = {r.camera for a in read_dataset_annotations(tmp_path / "a").values() for r in a.rows if r.style == "vqa"}
    assert cams and "observation.images.top" not in cams
    assert validate_dataset(tmp_path / "a").ok

    asked = run_annotation(_config(multifile_root, tmp_path / "b", vqa=VqaConfig(image_cameras=True, rotate_cameras=False)), VLM,
                           vlm=ScriptedBackend(oracle))
    assert asked.validation.ok, asked.validation.format()
    cams = {r.camera for a in read_dataset_annotations(tmp_path / "b").values() for r in a.rows if r.style == "vqa"}
    assert "observation.images.top" in cams
    assert not validate_dataset(tmp_path / "b").ok  # lerobot's rule by default ...
    assert validate_dataset(tmp_path / "b", config=ValidatorConfig(vqa_on_image_cameras=True)).ok  # ... unless allowed


@pytest.mark.parametrize(("seconds", "frames", "expected"), [
    (None, 3, 3),  # unset: the 3 frames up to the boundary
    (0.3, 4, 4),  # lerobot: 4 frames spread over 0.3 s centred on the boundary (30 fps: 0.1 s apart)
    (0.0, 4, 1),  # a zero-length window is the boundary frame, once
    (10.0, 4, 2),  # clamped to the 2 s episode: its first and last frame
])
def test_interjection_window_seconds_is_lerobots_centred_window(
    sample_root: Path, tmp_path: Path, seconds: float | None, frames: int, expected: int
) -> None:
    from lerobot_keyframes.annotate.config import QualityConfig

    cues: list[tuple[int, str]] = []

    def record(conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
        if "interjection" in (schema or {}).get("properties", {}):
            cues.append((count_images(conversation), prompt_text(conversation)))
        return plausible_answers(conversation, schema)

    config = AnnotateConfig(
        root=sample_root, out=tmp_path / "out", plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3),
        interjections=InterjectionsConfig(interjection_min_t=0.1, interjection_window_frames=frames,
                                          interjection_window_seconds=seconds),
        vqa=VqaConfig(enabled=False), quality=QualityConfig(enabled=False),
    )
    result = run_annotation(config, VLM, vlm=ScriptedBackend(record))
    assert result.failures == {} and result.validation.ok, result.validation.format()
    assert len(cues) == 2  # one boundary per episode
    assert [n for n, _ in cues] == [expected, expected]
    window = "the last moments before" if seconds is None else f"the {seconds:g} s around"
    assert all(re.search(rf"The images show {window} \d+\.\d\d s\.", text) for _, text in cues)


@pytest.mark.parametrize(("k", "rotate"), [(1, True), (3, True), (3, False)])
def test_vqa_k_asks_about_k_consecutive_frames_per_tick(sample_root: Path, tmp_path: Path, k: int,
                                                         rotate: bool) -> None:
    """Ticks at 0, 1, 2 s (30 fps; the episodes have 62 and 64 frames); lerobot's K: K consecutive frames
    from each tick, cut at the episode's end; cameras take turns on ticks unless told not to."""
    import pyarrow.parquet as pq

    from lerobot_keyframes.annotate.config import QualityConfig

    data = pq.read_table(next((sample_root / "data").rglob("*.parquet")), columns=["episode_index"])
    lengths = {int(e): n for e, n in zip(*np.unique(data["episode_index"].to_numpy(), return_counts=True))}

    asked: list[int] = []

    def record(conversation: list[dict[str, Any]], schema: dict[str, Any] | None) -> Any:
        asked.append(count_images(conversation))
        return plausible_answers(conversation, schema)

    config = AnnotateConfig(root=sample_root, out=tmp_path / "out", plan=PlanConfig(enabled=False),
                            interjections=InterjectionsConfig(enabled=False), quality=QualityConfig(enabled=False),
                            vqa=VqaConfig(K=k, rotate_cameras=rotate))
    result = run_annotation(config, VLM, vlm=ScriptedBackend(record))
    assert result.failures == {} and result.validation.ok, result.validation.format()
    total = 0
    for episode, ann in read_dataset_annotations(tmp_path / "out").items():
        runs = [[i for i in range(tick, tick + k) if i < lengths[episode]] for tick in (0, 30, 60)]
        turns = {"front": runs[0] + runs[2], "wrist": runs[1]} if rotate else {"front": sum(runs, []),
                                                                               "wrist": sum(runs, [])}
        want = {f"observation.images.{cam}": [round(i / 30, 4) for i in frames] for cam, frames in turns.items()}
        total += sum(len(v) for v in want.values())
        for role in ("user", "assistant"):  # one pair per (frame, camera), as lerobot 0.6.1 requires
            got = {cam: sorted(round(r.timestamp, 4) for r in ann.rows
                               if r.style == "vqa" and r.role == role and r.camera == cam) for cam in want}
            assert got == want
    assert asked and set(asked) == {1}  # every question is grounded on its one frame
    assert len(asked) == total


def test_vqa_k_runs_never_give_a_frame_to_two_taking_turns() -> None:
    from lerobot_keyframes.annotate.modules.vqa import tick_keyframes

    episode = {"episode_index": 0, "timestamps": [i / 4 for i in range(25)], "fps": 4}
    policies = tick_keyframes(VqaConfig(vqa_emission_hz=2.0, K=3), "front", ["front", "wrist"])  # runs overlap
    front, wrist = (set(policies[c].frame_indices(episode).tolist()) for c in ("front", "wrist"))
    assert not front & wrist and front | wrist == set(range(25))
    # ticks every 2nd frame, turns front/wrist: each tick keeps its frame, its run stops at the next tick
    assert sorted(front) == [0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24]


def test_write_annotations_times_the_annotator_map_not_only_the_write(sample_root: Path, tmp_path: Path) -> None:
    """A user's own chain (`.map(Annotator(...))`, then `write_annotations`) reports the time of the whole run:
    from the first batch's start (recorded in `annotation_stats`), not the write step alone."""
    import lerobot_keyframes as lk
    from lerobot_keyframes.annotate import Annotator, write_annotations

    config = _config(sample_root, tmp_path / "out")
    backend = ScriptedBackend(oracle, latency=0.5)  # every model call takes 0.5 s: the map takes seconds
    episodes = lk.load_episodes(sample_root)
    annotator = Annotator(config, VLM, vlm=backend)
    annotated = episodes.map(annotator, batched=True, features=annotator.features(episodes.features))
    assert backend.first_request is not None and backend.last_answer is not None
    answering = backend.last_answer - backend.first_request  # inside the map, after its first batch began
    assert answering >= 1.0  # plan, then interjections and vqa: at least two rounds of calls
    result = write_annotations(annotated, config, VLM)
    assert result.validation.ok and len(result.episodes) == 2
    assert result.seconds >= answering, (result.seconds, answering)
    assert f"in {result.seconds:.1f} s" in result.summary()


def test_a_users_annotator_stages_where_the_run_does(sample_root: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """One plan of a run: an `Annotator` made for a `datasets.map` chain stages where `run_annotation` and
    `write_annotations` would, under the same keys, also for a root given through a symlink and a relative path
    (the run names its default output after the resolved root)."""
    from lerobot_keyframes.annotate import Annotator
    from lerobot_keyframes.annotate.run.prepare import prepare_run

    (tmp_path / "link").symlink_to(sample_root, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    config = AnnotateConfig(root=Path("link"))  # default output: ./<dataset name>_annotated
    run = prepare_run(config, VLM, check_backend=False)
    run.lock.release()
    annotator = Annotator(config, VLM)
    assert run.plan.staging_dir == tmp_path / f"{sample_root.name}_annotated.staging"
    assert annotator.staging_dir == run.plan.staging_dir and annotator.keys == run.plan.keys
    in_place = AnnotateConfig(root=Path("link"), in_place=True)  # the staging folder beside the real root
    assert Annotator(in_place, VLM).staging_dir == sample_root.with_name(sample_root.name + ".staging")
