"""Records of submitted jobs and runs, and where they stand: job stage, followed logs (HF Jobs calls: `hub.jobs`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ....hub.jobs import JobStage, inspect_stage, stream_logs
from ....utils.files import atomic_write_json
from ....utils.structured import StructuredInputError, read_json_file

if TYPE_CHECKING:
    from huggingface_hub import HfApi


@dataclass
class JobHandle:
    """A submitted job: its id and URL (printed at submission), and for shards the episodes and branch."""

    job_id: str
    url: str
    namespace: str
    run_id: str
    stage: JobStage | None = None
    shard: int | None = None
    num_shards: int | None = None
    branch: str | None = None
    episodes: tuple[int, ...] | None = None
    frames: int | None = None

    def refresh(self, api: HfApi | None = None, token: str | None = None) -> JobStage | None:
        """The job's current stage (RUNNING, COMPLETED, ERROR, ...) from the Hub.

        Args:
            api (`HfApi`, *optional*):
                The client (default: `HfApi(token=token)`).
            token (`str`, *optional*):
                The Hugging Face token.
        """
        self.stage = inspect_stage(self.job_id, self.namespace, api, token)
        return self.stage


@dataclass
class ShardedRun:
    """The record of a sharded run (saved as JSON) so failed shards can be resubmitted and merged later."""

    run_id: str
    source_repo_id: str
    work_repo_id: str
    target_repo_id: str | None
    annotate_args: list[str]
    config: dict[str, Any]  # the JobConfig, as JSON
    shards: list[JobHandle] = field(default_factory=list)

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> ShardedRun:
        """The record saved by `save`; a file that is not one raises `RunFileError` naming it and the field."""
        try:
            data = read_json_file(path, max_bytes=64 << 20)
        except StructuredInputError as exc:
            raise RunFileError(f"{exc}; expected the run record `annotate --job.* --shards N` wrote") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, where: str = "run record") -> ShardedRun:
        """A run from its JSON form, every field's type checked (`RunFileError` names the field)."""
        if not isinstance(data, dict):
            raise RunFileError(f"{where}: expected a JSON object (a run record), got {type(data).__name__}")
        _check_fields(data, _RUN_FIELDS, where, {"shards"})
        shards_data = data.get("shards", [])
        if not isinstance(shards_data, list):
            raise RunFileError(f"{where}: field shards must be a list, got {type(shards_data).__name__}")
        shards = []
        for k, s in enumerate(shards_data):
            at = f"{where}: shards[{k}]"
            if not isinstance(s, dict):
                raise RunFileError(f"{at}: expected an object, got {type(s).__name__}")
            _check_fields(s, _SHARD_FIELDS, at, set())
            episodes = s.get("episodes")
            if episodes is not None:
                if not isinstance(episodes, list) or any(isinstance(e, bool) or not isinstance(e, int) for e in episodes):
                    raise RunFileError(f"{at}: field episodes must be a list of integers")
                episodes = tuple(episodes)
            shards.append(JobHandle(**{**s, "episodes": episodes}))
        return cls(**{k: v for k, v in data.items() if k != "shards"}, shards=shards)

    @property
    def branches(self) -> list[str]:
        return [s.branch for s in self.shards if s.branch]


class RunFileError(ValueError):
    """A run record (`--run_file`, `--resubmit_failed`) that is not one; the message names the file and field."""


# field -> (accepted JSON types, required)
_RUN_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "run_id": ((str,), True), "source_repo_id": ((str,), True), "work_repo_id": ((str,), True),
    "target_repo_id": ((str, type(None)), True), "annotate_args": ((list,), True), "config": ((dict,), True),
    "shards": ((list,), False),
}
_SHARD_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "job_id": ((str,), True), "url": ((str,), True), "namespace": ((str,), True), "run_id": ((str,), True),
    "stage": ((str, type(None)), False), "shard": ((int, type(None)), False), "num_shards": ((int, type(None)), False),
    "branch": ((str, type(None)), False), "episodes": ((list, type(None)), False), "frames": ((int, type(None)), False),
}


def _check_fields(data: dict[str, Any], fields: dict[str, tuple[tuple[type, ...], bool]], where: str,
                  nested: set[str]) -> None:
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise RunFileError(f"{where}: unknown field(s) {unknown}; expected fields: {sorted(fields)}")
    for name, (types, required) in fields.items():
        if name not in data:
            if required:
                raise RunFileError(f"{where}: field {name} is missing")
            continue
        value = data[name]
        if name not in nested and (isinstance(value, bool) and bool not in types or not isinstance(value, types)):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise RunFileError(f"{where}: field {name} must be {names}, got {type(value).__name__} {str(value)[:40]!r}")
    if "annotate_args" in data and not all(isinstance(a, str) for a in data["annotate_args"]):
        raise RunFileError(f"{where}: field annotate_args must be a list of strings")


def follow_logs(handle: JobHandle, api: HfApi | None = None, *, token: str | None = None,
                print_fn: Callable[[str], None] = print) -> JobStage | None:
    """Stream the job's logs until it ends; returns its final stage.

    Args:
        handle (`JobHandle`):
            The job to follow.
        api (`HfApi`, *optional*):
            The client (default: `HfApi(token=token)`).
        token (`str`, *optional*):
            The Hugging Face token.
        print_fn (`Callable[[str], None]`, *optional*):
            Where each log line goes.
    """
    stream_logs(handle.job_id, handle.namespace, api, token=token, print_fn=print_fn)
    return handle.refresh(api, token)
