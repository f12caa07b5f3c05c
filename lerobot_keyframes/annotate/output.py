"""From staged rows to the annotated dataset: validate, then write lerobot's two language columns."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..dataset.layout import INFO_PATH
from .config import AnnotateConfig

logger = logging.getLogger(__name__)


def validate_and_write(
    source_root: Path, out_root: Path, per_episode: dict[int, list[dict[str, Any]]], config: AnnotateConfig,
    provenance: dict[str, Any],
):
    """Write the episodes' rows; return the validation report. Nothing is written when it has errors.

    A first run builds `out_root` from the source (videos hard-linked). A later run into the same
    `out_root` rewrites it in place, so episodes not annotated this time keep the rows they have.
    """
    from ..language import EpisodeAnnotations, LanguageValidationError, ValidatorConfig, write_language

    annotations = {e: EpisodeAnnotations.from_rows(e, rows) for e, rows in per_episode.items()}
    options = {
        "validate": not config.skip_validation,
        # released lerobot 0.6.x fails on VQA of two cameras on one frame: enforce it when rotating
        "validator_config": ValidatorConfig(single_camera_vqa_per_frame=config.vqa.rotate_cameras),
    }
    try:
        if config.in_place:
            result = write_language(source_root, annotations, in_place=True, **options)
        elif (out_root / INFO_PATH).is_file():
            logger.info("updating the annotated dataset already at %s", out_root)
            result = write_language(out_root, annotations, in_place=True, **options)
        else:
            result = write_language(source_root, annotations, out=out_root, **options)
    except LanguageValidationError as exc:
        logger.error("validation failed, nothing was written (staged rows are kept):\n%s", exc.report.format())
        return exc.report
    _write_provenance(result.root, provenance)
    return result.report


def _write_provenance(root: Path, provenance: dict[str, Any]) -> None:
    """Provenance next to the data (meta/annotation_provenance.json), for the dataset card and for users."""
    import json

    from ..language.writer import atomic_write_text

    atomic_write_text(root / "meta" / "annotation_provenance.json", json.dumps(provenance, indent=2, sort_keys=True))
