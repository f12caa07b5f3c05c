"""Annotating an annotated dataset: rows the run does not produce are kept, a module replaces only its own."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _b_helpers as h  # noqa: E402

from lerobot_keyframes.annotate import run_annotation  # noqa: E402
from lerobot_keyframes.annotate.config import (  # noqa: E402
    AnnotateConfig,
    InterjectionsConfig,
    MotionConfig,
    PlanConfig,
    VqaConfig,
)
from lerobot_keyframes.testing.scripted import ScriptedBackend, plausible_answers  # noqa: E402
from lerobot_keyframes.vlm.config import VlmConfig  # noqa: E402

VLM = VlmConfig(backend="openai", model_id="model-A")
PLAN_STYLES = {"subtask", "plan", "memory", "task_aug"}


def _config(root: Path, out: Path, **kw) -> AnnotateConfig:
    kw.setdefault("plan", PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3))
    kw.setdefault("interjections", InterjectionsConfig(interjection_min_t=0.1))
    return AnnotateConfig(root=root, out=out, **kw)


@pytest.fixture(scope="module")
def annotated(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An annotated dataset (every module, motion included), standing in for human labels or an earlier run."""
    out = tmp_path_factory.mktemp("annotated") / "ds"
    result = run_annotation(_config(sample_root, out, motion=MotionConfig(enabled=True)), VLM,
                            vlm=ScriptedBackend(plausible_answers))
    assert result.validation.ok and result.rows_per_style.get("motion", 0) > 0
    return out


def _only(rows: dict[int, list[tuple]], keep) -> dict[int, list[tuple]]:
    return {e: [r for r in rs if keep(r)] for e, rs in rows.items()}


def test_plan_and_interjections_off_keeps_their_rows_and_validates(annotated: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    before_source = h.file_hashes(annotated)
    result = run_annotation(
        _config(annotated, out, seed=99, plan=PlanConfig(enabled=False),
                interjections=InterjectionsConfig(enabled=False)), VLM, vlm=ScriptedBackend(plausible_answers))
    assert result.failures == {} and result.validation.ok, result.validation.format()
    assert h.validate_ok(out)
    old, new = h.rows_by_episode(annotated), h.rows_by_episode(out)
    not_vqa = lambda r: r[0] != "vqa"  # noqa: E731
    assert _only(new, not_vqa) == _only(old, not_vqa)  # subtask, plan, memory, task_aug, interjection, speech, motion
    assert result.rows_kept["subtask"] > 0 and result.rows_kept["motion"] > 0
    assert set(result.rows_replaced) == {"vqa"} and result.rows_added["vqa"] > 0
    assert "existing rows kept" in result.summary() and "subtask=" in result.summary()
    prov = h.provenance(out)
    assert prov["rows"]["kept"]["subtask"] == result.rows_kept["subtask"]
    assert prov["kept_rows_origin"]["model_id"] == "model-A" and prov["history"][-1]["model_id"] == "model-A"
    assert h.file_hashes(annotated) == before_source


def test_plan_rerun_replaces_only_the_styles_it_owns(annotated: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    result = run_annotation(
        _config(annotated, out, plan=PlanConfig(n_task_rephrasings=2, min_subtask_seconds=0.3, emit_memory=False),
                interjections=InterjectionsConfig(enabled=False), vqa=VqaConfig(enabled=False)),
        VlmConfig(backend="openai", model_id="model-B"), vlm=ScriptedBackend(plausible_answers))
    assert result.validation.ok, result.validation.format()
    assert set(result.rows_replaced) <= PLAN_STYLES and result.rows_replaced["memory"] == 2
    assert "memory" not in result.rows_added and "memory" not in h.styles(out)  # no memory rows this time
    old, new = h.rows_by_episode(annotated), h.rows_by_episode(out)
    others = lambda r: r[0] not in PLAN_STYLES  # noqa: E731
    assert _only(new, others) == _only(old, others)  # vqa, motion, interjection, speech untouched
    # every kept interjection still has its own plan row at its time
    for e, rows in new.items():
        for t in {r[1] for r in rows if r[0] == "interjection"}:
            assert [r for r in rows if r[0] == "plan" and r[1] == t] == [r for r in old[e] if r[0] == "plan" and r[1] == t]
    assert h.validate_ok(out)


def test_replace_existing_replaces_every_row(annotated: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    result = run_annotation(
        _config(annotated, out, replace_existing=True, interjections=InterjectionsConfig(enabled=False),
                vqa=VqaConfig(enabled=False)), VLM, vlm=ScriptedBackend(plausible_answers))
    assert result.validation.ok, result.validation.format()
    assert set(h.styles(out)) == PLAN_STYLES
    assert {"motion", "vqa", "interjection", "speech"} <= set(result.rows_replaced) and not result.rows_kept


def test_replace_existing_is_a_flag() -> None:
    from lerobot_keyframes.cli import annotate_configs_from_args, build_parser

    args = build_parser().parse_args(["annotate", "--root=/x", "--replace_existing=true"])
    assert annotate_configs_from_args(args)[0].replace_existing is True


def test_new_interjection_on_a_kept_plan_frame_never_makes_two_plans(annotated: Path) -> None:
    """An interjections-only re-run whose cue lands where a kept plan row is: the new plan row wins (training
    fails on two plan rows at one time)."""
    from lerobot_keyframes.annotate.run.output import keep_existing_rows
    from lerobot_keyframes.annotate.run.plan import plan_run
    from lerobot_keyframes.language import read_dataset_annotations, validate_annotations
    from lerobot_keyframes.language.schema import LanguageRow

    anns, times = read_dataset_annotations(annotated)
    t = float(times[0][0])  # the first span start: a plan row of the plan module is there
    assert any(r.style == "plan" and r.timestamp == t for r in anns[0].persistent)
    speech = ({"type": "function", "function": {"name": "say", "arguments": {"text": "on it"}}},)
    new = [LanguageRow("user", "now the other one", "interjection", t),
           LanguageRow("assistant", None, None, t, tool_calls=speech),
           LanguageRow("assistant", "1. do the other one", "plan", t)]
    config = _config(annotated, annotated, plan=PlanConfig(enabled=False))
    merged, counts = keep_existing_rows(annotated, {0: new}, plan_run(config))
    plans_at_t = [r for r in merged[0] if r.style == "plan" and r.timestamp == t]
    assert [r.content for r in plans_at_t] == ["1. do the other one"]
    assert counts.replaced["plan"] >= 1 and counts.replaced["interjection"] >= 1
    from lerobot_keyframes.language import EpisodeAnnotations

    report = validate_annotations([EpisodeAnnotations.from_rows(0, merged[0])], {0: times[0]})
    assert report.ok, report.format()
