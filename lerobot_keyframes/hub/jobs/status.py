"""Records of submitted jobs and runs, and where they stand: job stage, followed logs, finished shard branches."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ...utils.files import atomic_write_json
from .._api import REPO_TYPE, get_api
from ..errors import hub_errors
from .config import JobStage

if TYPE_CHECKING:
    from huggingface_hub import HfApi, JobInfo


def job_stage(info: JobInfo) -> JobStage | None:
    """The stage of a `JobInfo` (`RUNNING`, `COMPLETED`, ...), or None when the Hub gave none."""
    stage = getattr(getattr(info, "status", None), "stage", None)
    return cast("JobStage", str(stage.value if hasattr(stage, "value") else stage)) if stage else None


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
        api = get_api(api, token)
        with hub_errors("inspecting the job", token=token):
            info = api.inspect_job(job_id=self.job_id, namespace=self.namespace, token=token)
        self.stage = job_stage(info)
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
        data = json.loads(Path(path).read_text())
        shards = [JobHandle(**{**s, "episodes": tuple(s["episodes"]) if s.get("episodes") is not None else None})
                  for s in data.pop("shards")]
        return cls(**data, shards=shards)

    @property
    def branches(self) -> list[str]:
        return [s.branch for s in self.shards if s.branch]


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
    api = get_api(api, token)
    with hub_errors("following the job logs", token=token):
        for line in api.fetch_job_logs(job_id=handle.job_id, namespace=handle.namespace, follow=True, token=token):
            print_fn(line)
    return handle.refresh(api, token)


def shard_complete(api: HfApi, repo_id: str, branch: str, token: str | None = None) -> bool:
    """Whether the shard's branch carries its completion marker (see merge.SHARD_MARKER)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    from ..merge import SHARD_MARKER

    with hub_errors("checking a shard branch", repo_id=repo_id, revision=branch, token=token):
        try:
            found = api.get_paths_info(repo_id, [SHARD_MARKER], revision=branch, repo_type=REPO_TYPE, token=token)
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return False
    return any(getattr(f, "path", None) == SHARD_MARKER for f in found)
