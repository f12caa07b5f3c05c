"""Each validator rule, triggered by a crafted violation on otherwise valid synthetic rows."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from lerobot_keyframes.language import (
    EpisodeAnnotations,
    LanguageRow,
    ValidationReport,
    ValidatorConfig,
    check_vqa_answer,
    speech_atom,
    validate_annotations,
    validate_episode,
)
from lerobot_keyframes.language.synthetic import synthetic_episode

FPS = 30
TS = (np.arange(90) / FPS).astype(np.float32)  # what a parquet holds: float32 episode times
FRONT, WRIST = "observation.images.front", "observation.images.wrist"
PHASES = {"approach": (0, 20), "grasp": (20, 35), "carry": (35, 60), "release": (60, 70), "retreat": (70, 90)}


def t(frame: int) -> float:
    return float(TS[frame])


def base(cameras=(FRONT,), **kw) -> EpisodeAnnotations:
    return synthetic_episode(0, TS, task="put the cube on the plate", cameras=list(cameras), phases=PHASES,
                             grasp_frame=25, release_frame=62, object_name="red cube", target_name="blue plate",
                             fps=FPS, **kw)


def check(ann: EpisodeAnnotations, config: ValidatorConfig | None = None) -> ValidationReport:
    return validate_episode(ann, TS, cameras=[FRONT, WRIST], config=config)


def with_rows(ann: EpisodeAnnotations, persistent=(), events=(), drop=lambda r: False) -> EpisodeAnnotations:
    return EpisodeAnnotations(
        ann.episode_index,
        tuple(r for r in ann.persistent if not drop(r)) + tuple(persistent),
        tuple(r for r in ann.events if not drop(r)) + tuple(events),
    )


def errors(report: ValidationReport) -> set[str]:
    return report.rules("error")


def test_synthetic_rows_are_valid():
    ann = base(vqa_hz=2.0)
    report = check(ann)
    assert report.ok, report.format()
    assert not report.warnings, report.format()
    styles = {r.style for r in ann.rows}
    assert styles == {"subtask", "plan", "memory", "task_aug", "motion", "interjection", "vqa", None}
    answers = [r for r in ann.events if r.style == "vqa" and r.role == "assistant"]
    assert {check_vqa_answer(r.content)[0] for r in answers} == {"bbox", "keypoint", "count", "attribute", "spatial"}


def test_unknown_style():
    report = check(with_rows(base(), persistent=[LanguageRow("assistant", "hi", "caption", t(5))]))
    assert errors(report) == {"unknown_style"}
    assert "episode 0" in str(report.errors[0]) and "caption" in str(report.errors[0])


def test_wrong_column():
    report = check(with_rows(base(), events=[LanguageRow("assistant", "grasp", "subtask", t(5))]))
    assert "wrong_column" in errors(report)
    report = check(with_rows(base(), persistent=[LanguageRow("user", "stop!", "interjection", t(5))]))
    assert "wrong_column" in errors(report)


@pytest.mark.parametrize("role", ["robot", None, "user"])
def test_invalid_role(role):
    report = check(with_rows(base(), persistent=[LanguageRow(role, "lift it", "motion", t(7))]))  # type: ignore[arg-type]
    assert errors(report) == {"invalid_role"}


def test_camera_rules():
    ann = base()
    q = next(r for r in ann.events if r.style == "vqa")
    no_cam = check(with_rows(ann, events=[replace(q, camera=None, timestamp=t(3))]))
    assert "camera_required" in errors(no_cam)
    unknown = check(with_rows(ann, events=[replace(q, camera="observation.images.side", timestamp=t(3))]))
    assert "unknown_camera" in errors(unknown)
    forbidden = check(with_rows(ann, persistent=[LanguageRow("assistant", "lift", "motion", t(8), camera=FRONT)]))
    assert errors(forbidden) == {"camera_forbidden"}


def test_timestamp_not_float32():
    # 1/3 in float64 is not a float32 value: it was recomputed instead of copied from the parquet
    report = check(with_rows(base(), persistent=[LanguageRow("assistant", "lift", "motion", 10 / FPS)]))
    assert errors(report) == {"timestamp_not_float32"}


def test_timestamp_not_frame():
    between = float(np.float32((t(10) + t(11)) / 2))
    report = check(with_rows(base(), persistent=[LanguageRow("assistant", "lift", "motion", between)]))
    assert errors(report) == {"timestamp_not_frame"}
    after_end = float(np.float32(5.0))
    report = check(with_rows(base(), events=[speech_atom("hi", after_end)]))
    assert errors(report) == {"timestamp_not_frame"}
    assert report.errors[0].timestamp == 5.0


def test_duplicate_persistent_same_style_role_time():
    report = check(with_rows(base(), persistent=[LanguageRow("assistant", "grasp it now", "subtask", t(20))]))
    assert errors(report) == {"duplicate_persistent"}
    assert report.errors[0].timestamp == t(20)
    # several task rephrasings at the first frame are expected (lerobot rotates through them)
    assert check(with_rows(base(), persistent=[LanguageRow("user", "cube onto plate", "task_aug", t(0))])).ok


def test_persistent_rows_within_emitted_at_window_warn():
    report = check(with_rows(base(), persistent=[LanguageRow("assistant", "pause", "motion", t(26))]))
    assert report.ok
    assert "persistent_too_close" in report.rules("warning")
    # 0.133 s apart: the frame between them is within lerobot's 0.1 s window of both
    near = [LanguageRow("assistant", "lift", "motion", t(40)), LanguageRow("assistant", "stop", "motion", t(44))]
    assert check(with_rows(base(), persistent=near)).rules("warning") == {"persistent_too_close"}
    # 0.233 s apart: no frame is within 0.1 s of both
    far = [near[0], LanguageRow("assistant", "stop", "motion", t(47))]
    assert not check(with_rows(base(), persistent=far)).issues


def test_subtask_coverage():
    no_subtasks = check(with_rows(base(), drop=lambda r: r.style == "subtask"))
    assert errors(no_subtasks) == {"subtask_coverage"}
    late = check(with_rows(base(), drop=lambda r: r.style == "subtask" and r.timestamp == t(0)))
    assert errors(late) == {"subtask_coverage"}
    assert "first frame" in late.errors[0].message
    assert check(with_rows(base(), drop=lambda r: r.style == "subtask"),
                 ValidatorConfig(require_subtasks=False)).ok


def test_interjection_needs_speech_and_plan():
    ann = base()
    inter = next(r for r in ann.events if r.style == "interjection")
    no_speech = check(with_rows(ann, drop=lambda r: r.style is None and r.timestamp == inter.timestamp))
    assert errors(no_speech) == {"interjection_unpaired"}
    assert "speech" in no_speech.errors[0].message
    no_plan = check(with_rows(ann, drop=lambda r: r.style == "plan" and r.timestamp == inter.timestamp))
    assert errors(no_plan) == {"interjection_unpaired"}
    assert "plan" in no_plan.errors[0].message
    two = check(with_rows(ann, events=[replace(inter, content="faster please")]))
    assert "interjection_per_frame" in errors(two)


def test_speech_atoms_well_formed():
    ann = base()
    say = {"type": "function", "function": {"name": "say", "arguments": {"text": "ok"}}}
    cases = {
        "content": LanguageRow("assistant", "ok", None, t(4), tool_calls=(say,)),
        "role": LanguageRow("user", None, None, t(4), tool_calls=(say,)),
        "no call": LanguageRow("assistant", None, None, t(4)),
        "other tool": LanguageRow("assistant", None, None, t(4), tool_calls=(
            {"type": "function", "function": {"name": "wave", "arguments": {}}},)),
        "string args": LanguageRow("assistant", None, None, t(4), tool_calls=(
            {"type": "function", "function": {"name": "say", "arguments": '{"text": "ok"}'}},)),
    }
    for name, row in cases.items():
        assert "speech_malformed" in errors(check(with_rows(ann, events=[row]))), name
    empty = check(with_rows(ann, events=[speech_atom("  ", t(4))]))
    assert errors(empty) == {"empty_content"}
    two = check(with_rows(ann, events=[speech_atom("a", t(4)), speech_atom("b", t(4))]))
    assert errors(two) == {"speech_per_frame"}


def test_tool_call_arguments_must_be_objects():
    row = LanguageRow("assistant", "waving", "motion", t(12), tool_calls=(
        {"type": "function", "function": {"name": "wave", "arguments": "{}"}},))
    assert errors(check(with_rows(base(), persistent=[row]))) == {"tool_call_malformed"}


def test_empty_content():
    report = check(with_rows(base(), persistent=[LanguageRow("assistant", " ", "motion", t(12))]))
    assert errors(report) == {"empty_content"}
    report = check(with_rows(base(), persistent=[LanguageRow("assistant", None, "motion", t(12))]))
    assert errors(report) == {"empty_content"}


def _vqa_pair(frame: int, answer: str, qtype: str | None = None, camera: str = FRONT) -> list[LanguageRow]:
    return [LanguageRow("user", "what is there?", "vqa", t(frame), camera=camera, question_type=qtype),
            LanguageRow("assistant", answer, "vqa", t(frame), camera=camera, question_type=qtype)]


@pytest.mark.parametrize(
    ("answer", "qtype", "needle"),
    [
        ("not json", None, "not valid JSON"),
        ('["a"]', None, "matches none"),
        ('{"label": "cube"}', None, "matches none"),
        ('{"color": "red", "count": 2, "label": "cube"}', None, "matches none"),  # unknown extra key
        ('{"count": 2, "label": "cube"}', "bbox", "asked for 'bbox'"),
        ('{"label": "cube", "count": 2}', None, "not sorted"),
        ('{"count": -1, "label": "cube"}', None, "non-negative"),
        ('{"count": 1.5, "label": "cube"}', None, "non-negative"),
        ('{"detections": [{"bbox": [1, 2, 3], "bbox_format": "xyxy", "label": "cube"}]}', None, "4 numbers"),
        ('{"detections": [{"bbox": [5, 2, 3, 4], "bbox_format": "xyxy", "label": "cube"}]}', None, "x1 > x2"),
        ('{"detections": [{"bbox": [1, 2, 3, 4], "bbox_format": "xywh", "label": "cube"}]}', None, "xyxy"),
        ('{"label": "cube", "point": [1], "point_format": "xy"}', None, "2 numbers"),
        ('{"attribute": "color", "label": "cube", "value": ""}', None, "'value'"),
        ('{"object": "plate", "relation": "on", "subject": ""}', None, "'subject'"),
        ('{"coords": "inches", "label": "c", "point": [1, 2], "point_format": "xy"}', None, "coords"),
        ('{"image_size": [0, 2], "label": "c", "point": [1, 2], "point_format": "xy"}', None, "image_size"),
    ],
)
def test_vqa_answer_rules(answer, qtype, needle):
    report = check(with_rows(base(), events=_vqa_pair(3, answer, qtype)))
    assert errors(report) == {"vqa_answer"}, report.format()
    assert needle in report.errors[0].message
    assert report.errors[0].camera == FRONT


def test_vqa_answer_type_from_the_question_row():
    rows = _vqa_pair(3, json.dumps({"count": 2, "label": "cube"}, sort_keys=True))
    rows[0] = replace(rows[0], question_type="spatial")
    report = check(with_rows(base(), events=rows))
    assert errors(report) == {"vqa_answer"} and "asked for 'spatial'" in report.errors[0].message


def test_vqa_one_row_per_role_frame_camera():
    ok = json.dumps({"count": 2, "label": "cube"}, sort_keys=True)
    report = check(with_rows(base(), events=_vqa_pair(3, ok) + _vqa_pair(3, ok)[1:]))
    assert errors(report) == {"vqa_duplicate"}


def test_vqa_question_and_answer_pair():
    ok = json.dumps({"count": 2, "label": "cube"}, sort_keys=True)
    report = check(with_rows(base(), events=_vqa_pair(3, ok)[1:]))
    assert errors(report) == {"vqa_unpaired"} and "question" in report.errors[0].message


def test_vqa_two_cameras_on_one_frame():
    all_cams = base(cameras=(FRONT, WRIST))
    relaxed = check(all_cams)
    assert relaxed.ok and relaxed.rules("warning") == {"vqa_multi_camera"}
    strict = check(all_cams, ValidatorConfig(single_camera_vqa_per_frame=True))
    assert errors(strict) == {"vqa_multi_camera"}
    rotating = base(cameras=(FRONT, WRIST), rotate_cameras=True)
    assert not check(rotating, ValidatorConfig(single_camera_vqa_per_frame=True)).issues
    assert {r.camera for r in rotating.events if r.style == "vqa"} == {FRONT, WRIST}


def test_task_aug_warnings():
    ann = base()
    dup = next(r for r in ann.persistent if r.style == "task_aug")
    report = check(with_rows(ann, persistent=[dup]))
    assert report.ok and "task_aug_duplicate" in report.rules("warning")
    late = check(with_rows(ann, persistent=[replace(dup, content="other words", timestamp=t(3))]))
    assert late.ok and "task_aug_not_first_frame" in late.rules("warning")


def test_report_per_episode_and_json():
    good = base()
    bad = EpisodeAnnotations(3, good.persistent + (LanguageRow("assistant", "x", "caption", t(1)),), good.events)
    report = validate_annotations([good, bad, EpisodeAnnotations(9)], {0: TS, 3: TS},
                                  cameras=[FRONT])
    assert report.failed_episodes() == [3, 9]
    assert report.episodes_checked == [0, 3]
    per = report.by_episode()
    assert [i.rule for i in per[3]["errors"]] == ["unknown_style"]
    assert [i.rule for i in per[9]["errors"]] == ["unknown_episode"]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["per_episode"]["3"]["errors"][0]["rule"] == "unknown_style"
    with pytest.raises(ValueError, match="unknown_style"):
        report.raise_for_errors()


def test_staging_style_dict_rows_are_accepted():
    """Rows as the annotate modules stage them (lerobot dicts with a timestamp) split by style."""
    dict_rows = [r.to_dict() for r in base().rows]
    ann = EpisodeAnnotations.from_rows(0, dict_rows)
    assert ann == base()
    assert check(ann).ok
