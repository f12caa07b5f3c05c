"""The Qwen-VL families: vision patch geometry, default pixel bounds and coordinate convention of each.

One table for every place that depends on the family: vision-token accounting (`frames.blocks`), the
image size and box/point units of VQA (`annotate.modules.vqa`) and the tiny offline test models
(`testing.tiny_qwen`). Values are those of the released processor configs (Qwen2-VL, Qwen2.5-VL:
14 px patches merged 2x2, 28 px per token side; Qwen3-VL: 16 px patches, 32 px).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

FamilyName = Literal["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
# How the model writes boxes and points: pixels of the image it saw, or 0-1000 of its width and height.
CoordinateConvention = Literal["pixel", "norm1000"]


@dataclass(frozen=True)
class VisionFamily:
    """Patch geometry, default pixel bounds and coordinate convention of a Qwen-VL family."""

    name: FamilyName
    patch_size: int
    merge_size: int
    temporal_patch_size: int
    min_pixels: int
    max_pixels: int
    video_min_pixels: int
    video_max_pixels: int
    video_budget_over_frames: bool  # Qwen3-VL bounds t*h*w of the whole clip; Qwen2/2.5-VL bound h*w per frame
    coordinates: CoordinateConvention

    @property
    def factor(self) -> int:
        """Pixels per token side."""
        return self.patch_size * self.merge_size


_QWEN2_VL = VisionFamily("qwen2_vl", patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=56 * 56,
                         max_pixels=12845056, video_min_pixels=128 * 28 * 28, video_max_pixels=768 * 28 * 28,
                         video_budget_over_frames=False, coordinates="pixel")
FAMILIES: dict[str, VisionFamily] = {
    "qwen2_vl": _QWEN2_VL,
    "qwen2_5_vl": replace(_QWEN2_VL, name="qwen2_5_vl"),  # same vision geometry; windowed attention aside
    "qwen3_vl": VisionFamily("qwen3_vl", patch_size=16, merge_size=2, temporal_patch_size=2, min_pixels=65536,
                             max_pixels=16777216, video_min_pixels=4096, video_max_pixels=25165824,
                             video_budget_over_frames=True, coordinates="norm1000"),
}
FAMILY_NAMES: tuple[FamilyName, ...] = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
DEFAULT_FAMILY: FamilyName = "qwen2_5_vl"
_ALIASES = {"qwen2.5_vl": "qwen2_5_vl", "qwen2.5-vl": "qwen2_5_vl", "qwen2-vl": "qwen2_vl", "qwen3-vl": "qwen3_vl",
            "qwen3_vl_moe": "qwen3_vl", "qwen2.5": "qwen2_5_vl", "qwen3": "qwen3_vl"}


def vision_family(family: str | VisionFamily) -> VisionFamily:
    """The family named `family` (a name of `FAMILIES` or a common spelling such as ``qwen2.5-vl``)."""
    if isinstance(family, VisionFamily):
        return family
    key = _ALIASES.get(family.lower(), family.lower())
    if key not in FAMILIES:
        raise ValueError(f"unknown Qwen-VL family {family!r}; use one of {sorted(FAMILIES)}")
    return FAMILIES[key]


def detect_family(model_id: str | None) -> FamilyName:
    """The family of a model: from a local directory's config.json (``model_type``) when there is one, else
    from the model id; Qwen2.5-VL when neither says."""
    name = (model_id or "").lower()
    if model_id and (Path(model_id) / "config.json").is_file():
        try:
            name = json.loads((Path(model_id) / "config.json").read_text()).get("model_type", name)
        except (OSError, ValueError):
            pass
    if "qwen3" in name:
        return "qwen3_vl"
    if "2.5" in name or "2_5" in name:
        return "qwen2_5_vl"
    if "qwen2" in name:
        return "qwen2_vl"
    return DEFAULT_FAMILY


__all__ = [
    "DEFAULT_FAMILY",
    "FAMILIES",
    "FAMILY_NAMES",
    "CoordinateConvention",
    "FamilyName",
    "VisionFamily",
    "detect_family",
    "vision_family",
]
