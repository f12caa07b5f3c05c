"""The one Qwen-VL family table (vlm/families.py) against real transformers processors and model configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lerobot_keyframes.annotate.modules.vqa import model_input_size
from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached
from lerobot_keyframes.vlm.families import FAMILIES, FAMILY_NAMES, detect_family, vision_family


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_the_table_is_what_transformers_builds_for_each_family(family: str) -> None:
    from transformers import AutoConfig, AutoProcessor

    path = tiny_qwen_cached(family)
    fam = FAMILIES[family]
    processor = AutoProcessor.from_pretrained(path)
    for proc in (processor.image_processor, processor.video_processor):
        assert (proc.patch_size, proc.merge_size, proc.temporal_patch_size) == (
            fam.patch_size, fam.merge_size, fam.temporal_patch_size), type(proc).__name__
    vision = AutoConfig.from_pretrained(path).vision_config
    assert (vision.patch_size, vision.spatial_merge_size) == (fam.patch_size, fam.merge_size)
    assert detect_family(str(path)) == family  # from its config.json's model_type, whatever the folder is called


def test_released_model_ids_name_their_family() -> None:
    assert detect_family("Qwen/Qwen2-VL-2B-Instruct") == "qwen2_vl"
    assert detect_family("Qwen/Qwen2.5-VL-3B-Instruct") == "qwen2_5_vl"
    assert detect_family("Qwen/Qwen3-VL-30B-A3B-Instruct") == "qwen3_vl"
    assert detect_family("some/unknown-model") == "qwen2_5_vl" and detect_family(None) == "qwen2_5_vl"


def test_a_local_config_wins_over_the_folder_name(tmp_path: Path) -> None:
    model = tmp_path / "qwen2-vl-finetune"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen3_vl_moe"}))
    assert detect_family(str(model)) == "qwen3_vl"
    (model / "config.json").write_text("{not json")
    assert detect_family(str(model)) == "qwen2_vl"  # an unreadable config: the name decides


def test_lookup_by_name_and_common_spellings() -> None:
    assert vision_family("Qwen2.5-VL") is FAMILIES["qwen2_5_vl"]
    assert vision_family("qwen3_vl_moe") is FAMILIES["qwen3_vl"]
    assert vision_family(FAMILIES["qwen2_vl"]) is FAMILIES["qwen2_vl"]
    with pytest.raises(ValueError, match=r"unknown Qwen-VL family 'llava'; use one of \['qwen2_5_vl'"):
        vision_family("llava")


def test_geometry_and_coordinates_per_family() -> None:
    assert {name: (f.factor, f.coordinates) for name, f in FAMILIES.items()} == {
        "qwen2_vl": (28, "pixel"), "qwen2_5_vl": (28, "pixel"), "qwen3_vl": (32, "norm1000")}
    # VQA sends images on the family's token grid, so the processor keeps the size the answer refers to
    assert model_input_size(640, 480, 448, "qwen2_5_vl") == (448, 336)
    assert model_input_size(640, 480, 448, "qwen3_vl") == (448, 320)
