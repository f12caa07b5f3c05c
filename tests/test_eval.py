"""`eval`: known figures on hand-built pairs, VQA in a common convention, and the CLI on an annotated dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lerobot_keyframes.cli import main
from lerobot_keyframes.evaluate import evaluate, load_labels, match_count, paired_errors
from lerobot_keyframes.evaluate.metrics import box_scores, score_episode

FPS = 30
REF = [0.0, 1.0, 2.5, 4.0, 5.2]  # span starts; boundaries are the four after 0
LABELS = ["reach", "grasp", "carry", "place", "retreat"]


def _write(path: Path, starts_per_episode: dict[int, list[float]], labels: bool = True, duration: float = 6.0) -> Path:
    episodes = []
    for e, starts in starts_per_episode.items():
        subtasks = [{"text": LABELS[k] if labels else f"s{k}", "start": s} for k, s in enumerate(starts)]
        episodes.append({"episode_index": e, "duration": duration, "subtasks": subtasks})
    path.write_text(json.dumps({"fps": FPS, "episodes": episodes}))
    return path


def test_perfect_prediction(tmp_path: Path):
    ref = load_labels(_write(tmp_path / "ref.json", {0: REF, 1: REF}))
    report = evaluate(load_labels(_write(tmp_path / "pred.json", {0: REF, 1: REF})), ref)
    t = report.totals()
    assert (t["n_ref"], t["n_pred"]) == (8, 8)
    assert t["f1@0.2"] == t["f1@0.5"] == t["f1@1"] == 1.0
    assert t["boundary_mae_s"] == 0.0 and t["label_agreement"] == 1.0


@pytest.mark.parametrize(("k", "f1"), [(3, (1.0, 1.0, 1.0)), (9, (0.0, 1.0, 1.0)),
                                       (24, (0.0, 0.25, 1.0))])  # 0.8 s late: 4.8 s is within 0.5 s of 5.2 s
def test_prediction_shifted_by_k_frames(tmp_path: Path, k: int, f1: tuple[float, float, float]):
    shift = k / FPS
    ref = load_labels(_write(tmp_path / "ref.json", {0: REF}))
    pred = load_labels(_write(tmp_path / "pred.json", {0: [0.0] + [s + shift for s in REF[1:]]}))
    t = evaluate(pred, ref).totals()
    assert (t["f1@0.2"], t["f1@0.5"], t["f1@1"]) == pytest.approx(f1)
    assert t["boundary_mae_s"] == pytest.approx(shift) and t["boundary_median_frames"] == pytest.approx(k)
    # each of the 4 boundaries leaves k frames (of 180) under the previous label
    assert t["label_agreement"] == pytest.approx(1 - 4 * k / (6.0 * FPS), abs=1e-9)


def test_one_boundary_missing_and_one_extra(tmp_path: Path):
    ref = load_labels(_write(tmp_path / "ref.json", {0: REF}))
    missing = load_labels(_write(tmp_path / "m.json", {0: [0.0, 1.0, 4.0, 5.2]}, labels=False))
    t = evaluate(missing, ref).totals()
    assert (t["precision@0.2"], t["recall@0.2"]) == (1.0, 0.75) and t["f1@0.2"] == pytest.approx(6 / 7)
    assert t["boundary_mae_s"] == 0.0 and t["pairs"] == 3  # the three that are there are exact
    assert t["label_agreement"] == 0.0  # labels s0.. never equal reach/grasp/...
    extra = load_labels(_write(tmp_path / "x.json", {0: [0.0, 1.0, 1.8, 2.5, 4.0, 5.2]}, labels=False))
    t = evaluate(extra, ref).totals()
    assert (t["precision@0.2"], t["recall@0.2"]) == (0.8, 1.0) and t["boundary_mae_s"] == 0.0


def test_matching_is_one_to_one_and_missing_episodes_count_as_missed(tmp_path: Path):
    assert match_count([1.0, 1.05], [1.02], 0.2) == 1  # two predictions near one boundary: one hit
    assert match_count([1.0], [0.9, 1.1], 0.2) == 1
    assert paired_errors([1.0, 2.0, 3.1], [2.1, 3.0]) == pytest.approx([0.1, 0.1])
    ref = load_labels(_write(tmp_path / "ref.json", {0: REF, 1: REF}))
    report = evaluate(load_labels(_write(tmp_path / "pred.json", {0: REF, 7: REF})), ref)
    t = report.totals()
    assert t["missing_in_pred"] == [1] and t["only_in_pred"] == [7] and t["recall@0.5"] == 0.5
    assert "(missing)" in report.format() and "only in the prediction" in report.format()


def test_boundaries_and_phases_shapes(tmp_path: Path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"episodes": [
        {"episode_index": 0, "boundaries": [1.0, 2.5]},
        {"episode_index": 1, "phases": {"b": {"start": 2.0, "end": 3.0}, "a": {"start": 0.0, "end": 2.0}}}]}))
    labels = load_labels(path)
    assert labels.episodes[0].boundaries == [1.0, 2.5] and labels.episodes[1].boundaries == [2.0]
    assert [t for t, _ in labels.episodes[1].spans] == [0.0, 2.0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"episodes": [{"episode_index": 3, "subtasks": [{"start": "soon"}]}]}))
    with pytest.raises(ValueError, match="episode 3, subtasks\\[0\\].start"):
        load_labels(bad)


def test_vqa_boxes_and_points_in_a_common_convention():
    from lerobot_keyframes.evaluate.labels import EpisodeLabels

    pixel = {"detections": [{"label": "cube", "bbox_format": "xyxy", "bbox": [10, 20, 30, 60]},
                            {"label": "pad", "bbox_format": "xyxy", "bbox": [50, 50, 90, 150]}],
             "coords": "pixel", "image_size": [100, 200]}
    norm = {"detections": [{"label": "pad", "bbox": [500, 250, 900, 750]}, {"label": "cube", "bbox": [100, 100, 300, 300]}],
            "coords": "norm1000", "image_size": [448, 336]}
    assert box_scores(pixel, norm) == pytest.approx([1.0, 1.0])  # same boxes, other convention and order
    half = {**norm, "detections": [{"label": "cube", "bbox": [100, 100, 200, 300]}]}
    assert box_scores(half, norm) == pytest.approx([0.0, 0.5])  # pad unmatched: 0; cube half covered
    p_pix = {"label": "cube", "point": [25, 50], "coords": "pixel", "image_size": [100, 200]}
    p_norm = {"label": "cube", "point": [250, 400], "coords": "norm1000", "image_size": [448, 336]}
    ref = EpisodeLabels(0, ((0.0, "a"),), 1.0, None, {(0.5, "front"): norm, (1.0, "front"): p_norm})
    pred = EpisodeLabels(0, ((0.0, "a"),), 1.0, None, {(0.5, "front"): pixel, (1.0, "front"): p_pix,
                                                       (1.0, "wrist"): p_pix})
    score = score_episode(pred, ref, (0.5,), 30.0)
    assert score.box_ious == pytest.approx([1.0, 1.0])
    assert score.point_distances == pytest.approx([0.15])  # (0.25, 0.25) vs (0.25, 0.40)


def test_eval_cli_on_an_annotated_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from lerobot_keyframes.annotate import run_annotation
    from lerobot_keyframes.annotate.config import AnnotateConfig, InterjectionsConfig, PlanConfig, VqaConfig
    from lerobot_keyframes.testing.sample import make_sample_dataset
    from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers
    from lerobot_keyframes.vlm.config import VlmConfig

    root = make_sample_dataset(tmp_path / "ds", episodes=2, cameras=("front",), width=64, height=48, codec="h264",
                               episode_seconds=2.0)
    cfg = AnnotateConfig(root=root, out=tmp_path / "out", interjections=InterjectionsConfig(enabled=False),
                         plan=PlanConfig(n_task_rephrasings=0, subtask_describe_first=False, min_subtask_seconds=0.2,
                                         snap_to_signals=False),
                         vqa=VqaConfig(vqa_emission_hz=1.0, question_types=("bbox",)))
    result = run_annotation(cfg, VlmConfig(backend="openai", model_id="scripted"), vlm=ScriptedBackend(plausible_answers))
    assert result.failures == {}
    # against the generator's truth: plausible_answers cuts each episode in two equal halves
    assert main(["eval", str(tmp_path / "out"), "--reference", str(root / "ground_truth.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    truth = json.loads((root / "ground_truth.json").read_text())
    assert [e["episode_index"] for e in report["episodes"]] == [0, 1]
    assert report["totals"]["n_ref"] == 8 and report["totals"]["n_pred"] == 2
    for ep, gt in zip(report["episodes"], truth["episodes"]):
        half = gt["duration"] / 2
        nearest = min(abs(p["start"] - half) for p in list(gt["phases"].values())[1:])
        assert ep["boundary_mae_s"] == pytest.approx(nearest, abs=1.0 / FPS)  # the frame the half snapped to
    # a dataset against itself: everything agrees, VQA boxes included
    assert main(["eval", str(tmp_path / "out"), "--reference", str(tmp_path / "out"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)["totals"]
    assert same["f1@0.2"] == 1.0 and same["label_agreement"] == 1.0 and same["vqa_boxes"] > 0
    assert main(["eval", str(tmp_path / "out"), "--reference", str(root / "ground_truth.json")]) == 0
    table = capsys.readouterr().out
    assert "F1@0.2" in table and "total" in table
    assert main(["eval", str(tmp_path / "nope"), "--reference", str(root)]) == 2
    assert "neither an annotated dataset root nor a JSON file" in capsys.readouterr().err
