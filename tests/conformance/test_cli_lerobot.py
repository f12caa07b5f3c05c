"""lerobot 0.6.1 itself: the flag list our parity tests use is lerobot-annotate's, and its validator rejects
view-dependent rows on image cameras where ours (by default) does too."""

from __future__ import annotations

import dataclasses
import typing

from test_cli_parity import LEROBOT_ANNOTATE_061


def _flags(cls: type, prefix: str = "") -> dict[str, object]:
    hints = typing.get_type_hints(cls)
    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(_flags(hints[f.name], f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    return out


def test_flag_list_is_lerobot_annotates() -> None:
    from lerobot.annotations.steerable_pipeline.config import AnnotationPipelineConfig

    assert _flags(AnnotationPipelineConfig) == LEROBOT_ANNOTATE_061


def test_image_camera_vqa_is_rejected_by_lerobot_and_by_us() -> None:
    import numpy as np
    from lerobot.annotations.steerable_pipeline.validator import StagingValidator, ValidationReport

    from lerobot_keyframes.language import EpisodeAnnotations, LanguageRow, validate_episode

    front, top = "observation.images.front", "observation.images.top"
    theirs = ValidationReport()
    row = {"role": "user", "content": "how many cubes?", "style": "vqa", "timestamp": 0.0, "camera": top}
    StagingValidator(dataset_camera_keys=(front,))._check_camera_field(row, theirs, 0, (front,))
    assert theirs.errors and "video keys" in theirs.errors[0]
    ann = EpisodeAnnotations(0, events=[LanguageRow("user", "how many cubes?", "vqa", 0.0, camera=top,
                                                    question_type="count"),
                                        LanguageRow("assistant", '{"count": 2}', "vqa", 0.0, camera=top,
                                                    question_type="count")])
    ours = validate_episode(ann, np.zeros(1, dtype=np.float32), cameras=[front, top], video_cameras=[front])
    assert "vqa_image_camera" in ours.rules("error")
