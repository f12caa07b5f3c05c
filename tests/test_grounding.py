"""Grounded subtask boundaries: robust rest detection, snapping to robot events, events in the prompt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lerobot_keyframes.annotate.modules.grounding import events_text, snap_spans
from lerobot_keyframes.annotate.modules.motion import motion_events
from lerobot_keyframes.annotate.modules.spans import clean_spans
from lerobot_keyframes.frames.policies import arm_dimensions, gripper_from_names, rest_windows
from lerobot_keyframes.frames.policies.events import SignalEvent, episode_grounding, resolve_signal

FPS = 30.0


def _min_jerk(s: np.ndarray) -> np.ndarray:
    return s**3 * (10 - 15 * s + 6 * s * s)


def _arm_with_drift(seed: int = 0, n: int = 240) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """x, y, z moving between rests at [60, 100] and [150, 190], then roll/pitch/yaw drifting all along
    (0.05 and -0.03 rad/s, a slow sine) with sensor noise on everything, then the gripper."""
    t = np.arange(n) / FPS
    keys = [(0, (0.3, 0.2, 0.4)), (60, (0.5, 0.1, 0.1)), (100, (0.5, 0.1, 0.1)), (150, (0.2, 0.4, 0.3)),
            (190, (0.2, 0.4, 0.3)), (n - 1, (0.3, 0.3, 0.4))]
    xyz = np.empty((n, 3))
    for (a, p), (b, q) in zip(keys, keys[1:]):
        s = _min_jerk((np.arange(a, b + 1) - a) / (b - a))
        xyz[a : b + 1] = np.asarray(p) + (np.asarray(q) - np.asarray(p)) * s[:, None]
    rng = np.random.default_rng(seed)
    xyz += rng.normal(0, 2e-4, xyz.shape)
    orientation = np.stack([0.05 * t, -0.03 * t, 0.02 * np.sin(t / 3)], axis=1) + rng.normal(0, 1e-3, (n, 3))
    gripper = ((np.arange(n) >= 75) & (np.arange(n) < 165)).astype(float)
    return np.concatenate([xyz, orientation, gripper[:, None]], axis=1), [(60, 100), (150, 190)]


def _close(found: list[tuple[int, int]], truth: list[tuple[int, int]], frames: int) -> bool:
    return len(found) == len(truth) and all(abs(a - c) <= frames and abs(b - d) <= frames
                                            for (a, b), (c, d) in zip(found, truth))


# -- rest detection -------------------------------------------------------------------------------------
def test_rest_detection_finds_rests_despite_drifting_orientation_and_noise():
    signal, truth = _arm_with_drift()
    t = np.arange(len(signal)) / FPS
    arm = signal[:, :6]
    # the old test (absolute speed over every non-gripper dimension) never sees the arm still:
    raw_speed = np.linalg.norm(np.diff(arm, axis=0), axis=1) * FPS
    assert (raw_speed[60:100] > 0.02).mean() > 0.9
    # per-dimension scaling + drift removal: both rests, with no names at all; edges within 4 frames (the
    # last ~4 frames of a slow min-jerk approach move less than the 2e-4 sensor noise: not measurable)
    assert _close(rest_windows(arm, t), truth, 4), rest_windows(arm, t)
    for seed in (1, 2, 3):  # other noise draws
        assert _close(rest_windows(_arm_with_drift(seed)[0][:, :6], t), truth, 4)
    # names that say which dimensions are positions: only x, y, z are used
    names = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
    assert arm_dimensions(names, 7, gripper_from_names(names)) == [0, 1, 2]
    assert _close(rest_windows(signal[:, [0, 1, 2]], t), truth, 4)
    # the motion module's rows: the arm comes to rest at each rest start, the gripper at its edges
    rows = motion_events(signal, FPS, gripper_from_names(names), names=names)
    still = [i for i, text in rows if text == "hold the arm still"]
    assert len(still) == 2 and abs(still[0] - 60) <= 3 and abs(still[1] - 150) <= 3
    assert {(75, "close the gripper"), (165, "open the gripper")} <= set(rows)


def test_joint_names_keep_every_joint_and_gripper_is_found_by_name():
    so100 = ["shoulder_pan.pos", "shoulder_lift.pos", "elbow_flex.pos", "wrist_flex.pos", "wrist_roll.pos",
             "gripper.pos"]
    assert gripper_from_names(so100) == 5
    assert arm_dimensions(so100, 6, 5) == [0, 1, 2, 3, 4]  # no x/y/z: joints are not dropped
    assert gripper_from_names(["a", "b"]) is None and gripper_from_names(["left_gripper", "right_gripper"]) is None


def test_a_still_signal_or_pure_noise_has_no_rests():
    rng = np.random.default_rng(0)
    t = np.arange(200) / FPS
    assert rest_windows(np.ones((200, 3)), t) == []
    assert rest_windows(rng.normal(0, 1e-4, (200, 3)) + 0.5, t) == []


# -- snapping -------------------------------------------------------------------------------------------
def _spans(starts: list[int], n: int = 300):
    ts = (np.arange(n) / FPS).astype(np.float32)
    raw = [{"text": f"step {k}", "start": float(ts[s]), "end": float(ts[s]) + 0.1} for k, s in enumerate(starts)]
    return clean_spans(raw, ts, FPS, min_seconds=0.1, max_steps=10, fallback_text="x"), ts


def _event(kind: str, index: int, tier: int = 1) -> SignalEvent:
    return SignalEvent(kind, index, float(np.float32(index / FPS)), tier)  # type: ignore[arg-type]


def test_snapping_moves_a_boundary_to_the_nearest_event_with_exact_times():
    spans, ts = _spans([0, 100, 200])
    out, snaps = snap_spans(spans, [_event("rest_start", 112), _event("gripper_close", 190)], ts, FPS,
                            tolerance_s=1.0)
    assert [s.start_index for s in out] == [0, 112, 190]
    assert [s.text for s in out] == ["step 0", "step 1", "step 2"]
    assert out[1].start == float(ts[112]) and out[0].end_index == 112 and out[0].end == float(ts[112])
    assert [(s.from_index, s.to_index, s.event) for s in snaps] == [(100, 112, "rest_start"), (200, 190, "gripper_close")]


def test_snapping_never_crosses_a_neighbouring_boundary_and_uses_each_event_once():
    spans, ts = _spans([0, 100, 120])
    # 125 is in reach of both boundaries; 100 may not jump over 120, so only 120 takes it
    out, snaps = snap_spans(spans, [_event("rest_end", 125)], ts, FPS, tolerance_s=1.0)
    assert [s.start_index for s in out] == [0, 100, 125]
    assert snaps[0].event is None and snaps[1].event == "rest_end"
    # one event between two boundaries, in reach of both: one of them takes it, the other stays
    out, _ = snap_spans(spans, [_event("rest_start", 110)], ts, FPS, tolerance_s=1.0)
    starts = [s.start_index for s in out]
    assert starts in ([0, 110, 120], [0, 100, 110]) and starts == sorted(set(starts))
    # two events, two boundaries: order is kept even when the nearest events would cross
    out, _ = snap_spans(spans, [_event("rest_start", 108), _event("rest_end", 112)], ts, FPS, tolerance_s=1.0)
    assert [s.start_index for s in out] == [0, 108, 112]


def test_no_event_near_leaves_the_boundary_unchanged():
    spans, ts = _spans([0, 100, 200])
    out, snaps = snap_spans(spans, [_event("rest_start", 150)], ts, FPS, tolerance_s=1.0)  # 1.67 s from both
    assert [s.start_index for s in out] == [0, 100, 200] and all(s.event is None for s in snaps)
    assert out == spans
    out, _ = snap_spans(spans, [], ts, FPS, tolerance_s=1.0)
    assert out == spans


def test_strong_events_win_weak_ones_and_content_events_are_never_targets():
    spans, ts = _spans([0, 100, 200])
    events = [_event("speed_min", 101, tier=2), _event("rest_start", 120), _event("gripper_close", 99, tier=0)]
    out, snaps = snap_spans(spans, events, ts, FPS, tolerance_s=1.0)
    assert out[1].start_index == 120 and snaps[0].event == "rest_start"
    # a weak event is used where no strong one is in reach
    out, snaps = snap_spans(spans, [_event("speed_min", 205, tier=2)], ts, FPS, tolerance_s=1.0)
    assert out[2].start_index == 205 and snaps[1].event == "speed_min"


def test_snapping_keeps_every_span_at_least_min_frames_long():
    spans, ts = _spans([0, 100, 200])
    out, _ = snap_spans(spans, [_event("rest_start", 10)], ts, FPS, tolerance_s=5.0, min_frames=30)
    assert out[1].start_index == 100  # frame 10 would leave the first span 10 frames long
    out, _ = snap_spans(spans, [_event("rest_start", 40)], ts, FPS, tolerance_s=5.0, min_frames=30)
    assert out[1].start_index == 40


def test_events_text_names_the_events_with_times():
    events = [_event("gripper_close", 64), _event("rest_start", 30), _event("speed_min", 90, 2)]
    text = events_text(events, 0.0, 3.0)
    assert "the gripper closes at 2.13 s" in text and "the arm stops at 1.00 s" in text and "slows" not in text
    assert events_text(events, 2.5, 3.0) == ""


# -- on a generated dataset -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grounded_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot_keyframes.testing.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("ground") / "ds", episodes=2, cameras=("front",), width=64,
                               height=48, codec="h264", episode_seconds=4.0)


def _boundaries(gt: dict[str, Any]) -> list[int]:
    return [p["start_frame"] for p in gt["phases"].values()][1:]


def test_events_of_the_sample_dataset_sit_on_its_phase_boundaries(grounded_root: Path):
    from lerobot_keyframes.dataset import load_episodes

    truth = json.loads((grounded_root / "ground_truth.json").read_text())
    for row, gt in zip(load_episodes(grounded_root), truth["episodes"]):
        ground = episode_grounding(row)
        assert ground.signal is not None and ground.signal.column == "observation.state"
        assert ground.signal.gripper_index == 3 and ground.signal.gripper_from == "names"
        rests = sorted(e.index for e in ground.events if e.kind in ("rest_start", "rest_end"))
        assert len(rests) == 4 and all(abs(a - b) <= 1 for a, b in zip(rests, _boundaries(gt))), (rests, gt)
        grips = {e.kind: e for e in ground.events if e.kind.startswith("gripper")}
        assert abs(grips["gripper_close"].index - gt["grasp_frame"]) <= 2 and grips["gripper_close"].tier == 0


def test_a_signal_without_a_named_gripper_is_not_used_unless_configured(grounded_root: Path, tmp_path: Path):
    from lerobot_keyframes.dataset import load_episodes

    root = tmp_path / "ds"
    shutil.copytree(grounded_root, root)
    info = json.loads((root / "meta/info.json").read_text())
    for key in ("observation.state", "action"):
        info["features"][key]["names"] = ["a", "b", "c", "d"]
    (root / "meta/info.json").write_text(json.dumps(info))
    row = load_episodes(root)[0]
    signal, _, note = resolve_signal(row)
    assert signal is None and "--motion.gripper_index" in note
    assert not episode_grounding(row).usable
    signal, values, note = resolve_signal(row, gripper_index=-1)
    assert signal is not None and signal.gripper_index == 3 and signal.gripper_from == "config" and note is None
    assert resolve_signal(row, column="nope", gripper_index=-1)[0].column == "observation.state"  # falls back to a present column


def _truth_responder(truth: dict[str, Any], shift_s: float):
    """Answers the segment prompt with the true phases, every boundary `shift_s` late; the episode is
    recognised by the duration the prompt states."""
    from lerobot_keyframes.testing.scripted import plausible_answers, prompt_text, window_of

    def respond(conversation, schema):
        text = prompt_text(conversation)
        window = window_of(text)
        if window is None or "subtasks" not in (schema or {}).get("properties", {}):
            return plausible_answers(conversation, schema)
        gt = min(truth["episodes"], key=lambda g: abs(g["duration"] - window[1]))
        respond.prompts.append(text)
        phases = list(gt["phases"].items())
        lo, hi = window
        return {"subtasks": [{"text": name, "start": round(min(hi, p["start"] + (shift_s if k else 0.0)), 3),
                              "end": round(min(hi, p["end"] + shift_s), 3)} for k, (name, p) in enumerate(phases)]}

    respond.prompts = []
    return respond


@pytest.mark.parametrize("snap", [True, False])
def test_the_pipeline_snaps_model_boundaries_onto_the_signal(grounded_root: Path, tmp_path: Path, snap: bool):
    from lerobot_keyframes.annotate import run_annotation
    from lerobot_keyframes.annotate.config import (
        AnnotateConfig,
        InterjectionsConfig,
        PlanConfig,
        QualityConfig,
        VqaConfig,
    )
    from lerobot_keyframes.annotate.run.staging import Staging
    from lerobot_keyframes.testing.scripted import ScriptedBackend
    from lerobot_keyframes.vlm.config import VlmConfig

    truth = json.loads((grounded_root / "ground_truth.json").read_text())
    responder = _truth_responder(truth, 0.3)
    cfg = AnnotateConfig(
        root=grounded_root, out=tmp_path / "out", staging_dir=tmp_path / "staging",
        plan=PlanConfig(n_task_rephrasings=0, min_subtask_seconds=0.2, subtask_describe_first=False,
                        snap_to_signals=snap, plan_max_steps=8),
        quality=QualityConfig(enabled=False), interjections=InterjectionsConfig(enabled=False),
        vqa=VqaConfig(enabled=False),
    )
    result = run_annotation(cfg, VlmConfig(backend="openai", model_id="scripted"), vlm=ScriptedBackend(responder))
    assert result.failures == {}
    assert any("the arm stops at" in p and "the gripper closes at" in p for p in responder.prompts)
    staging = Staging(tmp_path / "staging")
    for gt in truth["episodes"]:
        info = staging.read(gt["episode_index"], "plan").info
        starts = [s["start_index"] for s in info["spans"]][1:]
        shifted = [round(b + 0.3 * truth["fps"]) for b in _boundaries(gt)]
        g = info["grounding"]
        assert g["snap_to_signals"] is snap and g["signal"]["column"] == "observation.state"
        if snap:
            assert all(abs(a - b) <= 1 for a, b in zip(starts, _boundaries(gt))), (starts, _boundaries(gt))
            assert [s["event"] is not None for s in g["snapped"]] == [True] * 4
        else:
            assert all(abs(a - b) <= 1 for a, b in zip(starts, shifted)) and g["snapped"] == []
    assert ("boundaries snapped to robot events in 2 episodes" in result.summary()) is snap
    provenance = json.loads((tmp_path / "out/meta/annotation_provenance.json").read_text())["grounding"]
    assert sorted(provenance) == ["0", "1"] and provenance["0"]["signal"] == "observation.state"
    assert provenance["0"]["events"] >= 6 and len(provenance["0"]["moved"]) == (4 if snap else 0)


def test_grounding_and_quality_flags_reach_the_configs(tmp_path: Path):
    from lerobot_keyframes.cli import annotate_configs_from_args, build_parser

    args = build_parser().parse_args(["annotate", "--root", str(tmp_path), "--plan.snap_to_signals=false",
                                      "--plan.snap_tolerance_s=0.5", "--motion.gripper_index=2",
                                      "--quality.skip_bad_episodes=true", "--quality.short_fraction=0.2"])
    config, _ = annotate_configs_from_args(args)
    assert config.plan.snap_to_signals is False and config.plan.snap_tolerance_s == 0.5
    assert config.motion.gripper_index == 2
    assert config.quality.skip_bad_episodes is True and config.quality.short_fraction == 0.2
    default, _ = annotate_configs_from_args(build_parser().parse_args(["annotate", "--root", str(tmp_path)]))
    assert default.plan.snap_to_signals is None and default.motion.gripper_index is None


def test_gripper_polarity_follows_the_first_frame_and_long_event_lists_are_thinned(grounded_root: Path, tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lerobot_keyframes.dataset import load_episodes

    root = tmp_path / "ds"
    shutil.copytree(grounded_root, root)
    data = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(data)
    state = np.asarray(table["observation.state"].to_pylist(), dtype=np.float32)
    state[:, 3] = 100.0 * (1.0 - state[:, 3])  # a gripper in 0..100 where high is open (like so100's gripper.pos)
    i = table.schema.get_field_index("observation.state")
    table = table.set_column(i, table.schema.field(i), pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 4))
    pq.write_table(table, data, row_group_size=len(table) // 2)
    truth = json.loads((root / "ground_truth.json").read_text())["episodes"][0]
    events = {e.kind: e.index for e in episode_grounding(load_episodes(root)[0]).events if e.kind.startswith("gripper")}
    assert abs(events["gripper_close"] - truth["grasp_frame"]) <= 2
    assert abs(events["gripper_open"] - truth["release_frame"]) <= 2
    many = [_event("rest_start", k) for k in range(1, 200, 2)]
    assert events_text(many).count("the arm stops at") == 24


def test_summary_says_why_episodes_were_not_snapped():
    from lerobot_keyframes.annotate.modules.grounding import grounding_info, grounding_summary, should_snap
    from lerobot_keyframes.frames.policies.events import Grounding

    none = Grounding(None, (), "no entry of 'observation.state' is named as the gripper")
    assert not should_snap(None, none) and not should_snap(True, none)
    infos = {0: {"grounding": grounding_info(none, None, False, 1.0)},
             1: {"grounding": grounding_info(none, None, False, 1.0)}}
    (line,) = grounding_summary(infos)
    assert line.startswith("grounding: not snapped in 2 episodes (0, 1): no entry of 'observation.state'")
