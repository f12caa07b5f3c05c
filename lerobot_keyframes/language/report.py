"""What a validation pass found: `Issue`s collected per episode into a `ValidationReport`, and its options.

Issues are collected, never raised one by one, so a user sees every problem of a run at once; a caller that
must stop raises `LanguageValidationError`, which carries the whole report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .schema import LanguageRow

IssueLevel = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One broken rule: where (episode, time, camera, style) and what to do about it."""

    level: IssueLevel
    rule: str
    message: str
    episode_index: int | None = None
    timestamp: float | None = None
    camera: str | None = None
    style: str | None = None

    def __str__(self) -> str:
        where = []
        if self.episode_index is not None:
            where.append(f"episode {self.episode_index}")
        if self.timestamp is not None:
            where.append(f"t={self.timestamp!r}")
        if self.camera is not None:
            where.append(f"camera {self.camera!r}")
        prefix = ", ".join(where)
        return f"[{self.rule}] {prefix + ': ' if prefix else ''}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "rule": self.rule, "message": self.message,
                "episode_index": self.episode_index, "timestamp": self.timestamp,
                "camera": self.camera, "style": self.style}


@dataclass
class ValidationReport:
    """Errors and warnings of one validation pass, with the episodes it checked."""

    issues: list[Issue] = field(default_factory=list)
    episodes_checked: list[int] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, rule: str, message: str, *, episode_index: int | None = None, timestamp: float | None = None,
              camera: str | None = None, style: str | None = None) -> None:
        self.issues.append(Issue("error", rule, message, episode_index, timestamp, camera, style))

    def warning(self, rule: str, message: str, *, episode_index: int | None = None, timestamp: float | None = None,
                camera: str | None = None, style: str | None = None) -> None:
        self.issues.append(Issue("warning", rule, message, episode_index, timestamp, camera, style))

    def row_error(self, rule: str, message: str, row: LanguageRow, episode_index: int) -> None:
        """An error located at `row` (its time, camera and style)."""
        self.error(rule, message, episode_index=episode_index, timestamp=row.timestamp, camera=row.camera,
                   style=row.style)

    def extend(self, other: ValidationReport) -> None:
        self.issues.extend(other.issues)
        self.episodes_checked.extend(e for e in other.episodes_checked if e not in self.episodes_checked)

    def rules(self, level: IssueLevel | None = None) -> set[str]:
        return {i.rule for i in self.issues if level is None or i.level == level}

    def by_episode(self) -> dict[int | None, dict[str, list[Issue]]]:
        out: dict[int | None, dict[str, list[Issue]]] = {}
        for issue in self.issues:
            out.setdefault(issue.episode_index, {"errors": [], "warnings": []})[issue.level + "s"].append(issue)
        return out

    def failed_episodes(self) -> list[int]:
        return sorted({i.episode_index for i in self.errors if i.episode_index is not None})

    def summary(self) -> str:
        return (f"{len(self.episodes_checked)} episode(s) checked, {len(self.errors)} error(s), "
                f"{len(self.warnings)} warning(s)")

    def format(self, limit: int | None = 50) -> str:
        lines = [self.summary()]
        shown = self.errors + self.warnings
        for issue in shown[:limit] if limit else shown:
            lines.append(f"  {issue.level}: {issue}")
        if limit and len(shown) > limit:
            lines.append(f"  ... and {len(shown) - limit} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        per_episode = {
            str(ep): {"errors": [i.to_dict() for i in v["errors"]], "warnings": [i.to_dict() for i in v["warnings"]]}
            for ep, v in self.by_episode().items()
        }
        return {"ok": self.ok, "episodes_checked": self.episodes_checked, "errors": len(self.errors),
                "warnings": len(self.warnings), "per_episode": per_episode}

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise LanguageValidationError(self)


class LanguageValidationError(ValueError):
    """The rows break rules lerobot depends on; `.report` holds every issue."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        super().__init__("language rows failed validation: " + report.format(limit=20))


@dataclass(frozen=True)
class ValidatorConfig:
    """Which optional rules apply.

    `single_camera_vqa_per_frame`: released lerobot 0.6.0/0.6.1 resolve `emitted_at(t, style=vqa, ...)`
    without a camera and fail when one frame carries VQA from two cameras; turn this on (with the VQA
    module's camera rotation) for output those versions can train on. Off, it is a warning.
    `require_subtasks`: an episode with plan or memory rows must have subtask rows covering it (an episode
    with neither, e.g. a motion-only run, passes: lerobot 0.6.1 has no subtask rule at all).
    `vqa_on_image_cameras`: lerobot 0.6.1's `StagingValidator`, as lerobot-annotate sets it up, rejects
    view-dependent rows (VQA) on a camera stored as images ("not one of the dataset's video keys"); off
    (the default), so do we. Checked when the caller names the video cameras (`video_cameras=`).
    """

    single_camera_vqa_per_frame: bool = False
    require_subtasks: bool = True
    vqa_on_image_cameras: bool = False
