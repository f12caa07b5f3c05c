"""Where our validator disagreed with lerobot 0.6.1: VQA on image-stored cameras, subtask-free runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_language_validator import FRONT, TS, WRIST, base, errors, with_rows

from lerobot_keyframes.language import ValidatorConfig, validate_episode


def test_vqa_on_an_image_camera_is_an_error_by_default_like_lerobot() -> None:
    ann = base(cameras=(FRONT, WRIST))
    vqa = [r for r in ann.events if r.style == "vqa"]
    assert {r.camera for r in vqa} >= {WRIST}
    report = validate_episode(ann, TS, cameras=[FRONT, WRIST], video_cameras=[FRONT])  # WRIST stored as images
    assert errors(report) == {"vqa_image_camera"}
    assert all(i.camera == WRIST for i in report.errors) and "video keys" in report.errors[0].message
    allowed = validate_episode(ann, TS, cameras=[FRONT, WRIST], video_cameras=[FRONT],
                               config=ValidatorConfig(vqa_on_image_cameras=True))
    assert "vqa_image_camera" not in errors(allowed)
    assert "vqa_image_camera" not in errors(validate_episode(ann, TS, cameras=[FRONT, WRIST],
                                                             video_cameras=[FRONT, WRIST]))


def test_an_episode_without_subtasks_passes_unless_plan_or_memory_rows_need_them() -> None:
    ann = base()
    motion_only = with_rows(ann, drop=lambda r: r.style != "motion")
    assert motion_only.persistent and not motion_only.events
    assert not errors(validate_episode(motion_only, TS, cameras=[FRONT]))
    only_plan = with_rows(ann, drop=lambda r: r.style == "subtask")
    report = validate_episode(only_plan, TS, cameras=[FRONT])
    assert "subtask_coverage" in errors(report) and "no subtask rows" in report.errors[0].message


def test_motion_only_run_succeeds_on_the_cli(sample_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "lerobot_keyframes.cli", "annotate", f"--root={sample_root}", f"--out={out}",
         "--plan.enabled=false", "--interjections.enabled=false", "--vqa.enabled=false", "--motion.enabled=true"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "annotated 2 of 2 episodes" in proc.stdout and "motion" in proc.stdout
    validate = subprocess.run([sys.executable, "-m", "lerobot_keyframes.cli", "validate", str(out)],
                              capture_output=True, text=True, timeout=300)
    assert validate.returncode == 0, validate.stdout[-3000:]
