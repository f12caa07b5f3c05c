"""Merge sharded annotation runs: each shard's staging comes from its own branch, the union is checked and
handed to a writer callback that writes, validates and (through push_dataset) pushes the final dataset once.

Data contract (what a shard job pushes, with `push_shard_staging`):

- branch `<shard branch>` of the work repo holds `staging/episode-XXXXXX/<module>.jsonl` files, the layout
  of `lerobot_keyframes.annotate.run.staging.Staging` (first line a header with `episode_index`, then one JSON
  row per line), and `staging/episode-XXXXXX/<module>.error.json` for modules that failed;
- `staging/_shard.json` (SHARD_MARKER) is written in the same commit, last: its presence means the shard
  finished. It records `run_id`, `shard`, `num_shards`, `episodes` (planned), `staged`, `failed`, and `run`:
  what the run that staged it says about itself (annotate's run record: its modules and their keys), kept as is.

`collect_shards` downloads the staging of every shard and builds the union in `work_dir/staging`, checking
that every file parses, that each shard staged only its own episodes, that no episode comes from two shards
with different content, and (by default) that every planned episode is there without errors.
`merge_shards` then calls `write(staging_dir, episodes)` — annotate's writer — and returns its result. What a shard
is and which run it belongs to is annotate's (`annotate.executors.jobs`); this module is the branch plumbing.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._api import REPO_TYPE, get_api
from .errors import hub_errors

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)

STAGING_PREFIX = "staging/"
SHARD_MARKER = "staging/_shard.json"
_STAGED = re.compile(r"^episode-(\d+)/([A-Za-z0-9_.-]+?)(\.jsonl|\.error\.json)$")
T = TypeVar("T")


class MergeError(ValueError):
    """The shards cannot be merged as they are; the message names the shard branch, file and episode."""


@dataclass(frozen=True)
class ShardSource:
    """One shard to merge: its branch, and the episodes it was planned to annotate (None: trust its marker)."""

    branch: str
    episodes: tuple[int, ...] | None = None
    repo_id: str | None = None  # defaults to the repo given to collect_shards


@dataclass
class CollectedStaging:
    staging_dir: Path
    episodes: list[int]
    by_shard: dict[str, list[int]]
    files: int
    failed: dict[int, list[str]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    runs: dict[str, Any] = field(default_factory=dict)  # branch -> the run record its marker carries (None: none)


@dataclass
class MergeResult(Generic[T]):
    collected: CollectedStaging
    written: T


def staged_files(staging_dir: Path) -> dict[str, Path]:
    """relative path (`episode-XXXXXX/<module>.jsonl|.error.json`) -> file, for a local staging dir."""
    out = {}
    for path in sorted(staging_dir.glob("episode-*/*")):
        rel = path.relative_to(staging_dir).as_posix()
        if path.is_file() and _STAGED.match(rel):
            out[rel] = path
    return out


def _check_jsonl(text: str, where: str, episode: int) -> None:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MergeError(f"{where}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise MergeError(f"{where}:{number}: expected a JSON object, got {type(row).__name__}")
        if number == 1 and "episode_index" in row and row["episode_index"] != episode:
            raise MergeError(f"{where}:1: header says episode {row['episode_index']} but the file is under "
                             f"episode-{episode:06d}")


def push_shard_staging(
    staging_dir: str | Path,
    repo_id: str,
    *,
    branch: str,
    episodes: Sequence[int],
    run_id: str | None = None,
    shard: int | None = None,
    num_shards: int | None = None,
    private: bool | None = None,
    token: str | None = None,
    api: HfApi | None = None,
    record: Mapping[str, Any] | None = None,
) -> str:
    """Push a shard's staging to `repo_id@branch` in one commit, completion marker included; returns the commit.

    Creates the repo (private unless `private=False`) and the branch when missing. Refuses staging of episodes
    outside `episodes`. Re-running after an interruption is safe: unchanged files are skipped by the Hub.

    Args:
        staging_dir (`str` or `Path`):
            The shard's local staging (the `Staging` layout).
        repo_id (`str`):
            The work repo the shard branches live in.
        branch (`str`):
            This shard's branch (see `annotate.executors.jobs.shard_branch`).
        episodes (`Sequence[int]`):
            The episodes the shard was planned to annotate (recorded in the marker).
        run_id, shard, num_shards (*optional*):
            Recorded in the completion marker.
        private (`bool`, *optional*):
            A new work repo's visibility (default: private).
        token (`str`, *optional*):
            The Hugging Face token.
        api (`HfApi`, *optional*):
            The client (default: `HfApi(token=token)`).
        record (`Mapping`, *optional*):
            What the run says about itself (JSON), recorded in the marker as `run` for the merge.

    Raises:
        `MergeError`: staging of an episode outside `episodes`. `HubError`: a Hub failure.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete
    from huggingface_hub.errors import RepositoryNotFoundError
    from huggingface_hub.hf_api import RepoFile

    staging_dir = Path(staging_dir)
    api = get_api(api, token)
    planned = sorted(set(int(e) for e in episodes))
    files = staged_files(staging_dir)
    staged, failed = set(), set()
    for rel in files:
        match = _STAGED.match(rel)
        assert match is not None
        episode = int(match.group(1))
        if episode not in planned:
            raise MergeError(f"{staging_dir / rel}: episode {episode} is not one of this shard's episodes {planned}")
        (failed if match.group(3) == ".error.json" else staged).add(episode)
    with hub_errors("preparing the shard branch", repo_id=repo_id, revision=branch, token=token, write=True):
        try:
            api.repo_info(repo_id, repo_type=REPO_TYPE, token=token)
        except RepositoryNotFoundError:
            api.create_repo(repo_id, repo_type=REPO_TYPE, private=True if private is None else private,
                            exist_ok=True, token=token)
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE, token=token)
        if branch not in {b.name for b in refs.branches}:
            api.create_branch(repo_id, branch=branch, repo_type=REPO_TYPE, exist_ok=True, token=token)
        remote = [f.path for f in api.list_repo_tree(repo_id, recursive=True, revision=branch, repo_type=REPO_TYPE,
                                                      token=token) if isinstance(f, RepoFile)]
    marker = {"run_id": run_id, "shard": shard, "num_shards": num_shards, "episodes": planned,
              "staged": sorted(staged), "failed": sorted(failed), "run": dict(record) if record is not None else None}
    ops: list[Any] = [CommitOperationAdd(STAGING_PREFIX + rel, str(path)) for rel, path in files.items()]
    ops += [CommitOperationDelete(p) for p in remote
            if p.startswith(STAGING_PREFIX) and p != SHARD_MARKER and p[len(STAGING_PREFIX):] not in files]
    ops.append(CommitOperationAdd(SHARD_MARKER, json.dumps(marker, indent=2, sort_keys=True).encode()))
    with hub_errors("pushing the shard staging", repo_id=repo_id, revision=branch, token=token, write=True):
        info = api.create_commit(repo_id, operations=ops, repo_type=REPO_TYPE, revision=branch, token=token,
                                 commit_message=f"Shard {shard if shard is not None else '?'} staging "
                                                f"({len(staged)} episodes)")
    return info.oid


def collect_shards(
    repo_id: str,
    shards: Sequence[ShardSource | str],
    *,
    work_dir: str | Path,
    token: str | None = None,
    api: HfApi | None = None,
    require_complete: bool = True,
) -> CollectedStaging:
    """Download every shard's staging and build their union in `work_dir/staging` (see the module docstring).

    Args:
        repo_id (`str`):
            The work repo (a `ShardSource` may name another).
        shards (`Sequence[ShardSource | str]`):
            The shards, by `ShardSource` or branch name (a bare branch: its marker says its episodes).
        work_dir (`str` or `Path`):
            Where the union is built (`work_dir/staging` is replaced).
        token (`str`, *optional*):
            The Hugging Face token.
        api (`HfApi`, *optional*):
            The client (default: `HfApi(token=token)`).
        require_complete (`bool`, *optional*, defaults to `True`):
            Refuse planned episodes with no staged rows or with failed modules.

    Raises:
        `MergeError`: a branch that does not exist or did not finish, overlapping or wrong episodes, a
        corrupt file (named with its line).
    """
    api = get_api(api, token)
    out = Path(work_dir) / "staging"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    union = _Union(out)
    for item in shards:
        src = ShardSource(item) if isinstance(item, str) else item
        repo = src.repo_id or repo_id
        where = f"{repo}@{src.branch}"
        head, paths = _read_branch(api, repo, src.branch, where, token)
        fetch = functools.partial(_fetch, api, repo, head, token)
        planned = union.plan(where, src, json.loads(fetch(SHARD_MARKER)))
        mine: set[int] = set()
        for path in sorted(paths - {SHARD_MARKER}):
            rel = path[len(STAGING_PREFIX):]
            match = _STAGED.match(rel)
            if match is None:
                logger.warning("%s: ignoring %s (not episode-XXXXXX/<module>.jsonl)", where, path)
                continue
            episode = int(match.group(1))
            union.check_owner(where, src.branch, path, episode, planned)
            if union.add(where, src.branch, path, episode, fetch(path), jsonl=match.group(3) == ".jsonl"):
                mine.add(episode)
        union.by_shard[src.branch] = sorted(mine)
    return union.collected(require_complete)


def _read_branch(api: HfApi, repo: str, branch: str, where: str, token: str | None) -> tuple[str, set[str]]:
    """(head commit, staged paths) of a finished shard branch; a missing or unfinished one is a `MergeError`."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.hf_api import RepoFile

    from .errors import remote_entry_not_found_error

    entry_not_found = remote_entry_not_found_error()
    with hub_errors("reading a shard branch", repo_id=repo, revision=branch, token=token):
        try:
            head = api.repo_info(repo, repo_type=REPO_TYPE, revision=branch, token=token).sha
            try:
                listing = [f for f in api.list_repo_tree(repo, path_in_repo="staging", recursive=True, revision=head,
                                                         repo_type=REPO_TYPE, token=token) if isinstance(f, RepoFile)]
            except entry_not_found:
                listing = []
        except (RevisionNotFoundError, RepositoryNotFoundError):
            raise MergeError(f"{where}: the shard branch does not exist; its job did not push. Resubmit the "
                             "failed shards (lerobot-keyframes job --resubmit_failed RUN_FILE).") from None
    paths = {f.path for f in listing}
    if SHARD_MARKER not in paths:
        raise MergeError(f"{where}: no {SHARD_MARKER}; the shard did not finish. Resubmit the failed shards.")
    return str(head), paths


def _fetch(api: HfApi, repo: str, head: str, token: str | None, path: str) -> bytes:
    with hub_errors(f"downloading {path}", repo_id=repo, revision=head, token=token):
        return Path(api.hf_hub_download(repo, path, repo_type=REPO_TYPE, revision=head, token=token)).read_bytes()


@dataclass
class _Union:
    """The union being built in `out`: who owns each file and episode, what each shard staged, what failed."""

    out: Path
    owner_of_file: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    owner_of_episode: dict[int, str] = field(default_factory=dict)
    by_shard: dict[str, list[int]] = field(default_factory=dict)
    failed: dict[int, list[str]] = field(default_factory=dict)
    planned: set[int] = field(default_factory=set)
    runs: dict[str, Any] = field(default_factory=dict)

    def plan(self, where: str, src: ShardSource, marker: dict[str, Any]) -> set[int]:
        """The shard's planned episodes (the run's, else its marker's), checked against the marker and the others."""
        planned = set(src.episodes) if src.episodes is not None else set(marker.get("episodes") or [])
        if src.episodes is not None and sorted(marker.get("episodes") or []) != sorted(src.episodes):
            raise MergeError(f"{where}: {SHARD_MARKER} lists episodes {marker.get('episodes')} but the run planned "
                             f"{sorted(src.episodes)} for this shard")
        overlap = planned & self.planned
        if overlap:
            raise MergeError(f"{where}: episodes {sorted(overlap)} are planned in two shards")
        self.planned |= planned
        self.runs[src.branch] = marker.get("run")
        return planned

    def check_owner(self, where: str, branch: str, path: str, episode: int, planned: set[int]) -> None:
        if episode not in planned:
            raise MergeError(f"{where}: {path} is episode {episode}, outside this shard's episodes {sorted(planned)}")
        other = self.owner_of_episode.get(episode)
        if other is not None and other != branch:
            raise MergeError(f"episode {episode} is staged by two shards ({other} and {branch}); "
                             "the shard plans overlap")

    def add(self, where: str, branch: str, path: str, episode: int, content: bytes, *, jsonl: bool) -> bool:
        """Write one staged file into the union; True when it holds rows (not a module's error)."""
        rel = path[len(STAGING_PREFIX):]
        if rel in self.owner_of_file and self.owner_of_file[rel][1] != content:
            raise MergeError(f"{path} differs between {self.owner_of_file[rel][0]} and {branch}")
        if jsonl:
            _check_jsonl(content.decode("utf-8"), f"{where}:{path}", episode)
        else:
            self.failed.setdefault(episode, []).append(f"{where}:{path}: {content.decode('utf-8', 'replace')[:300]}")
        self.owner_of_file[rel] = (branch, content)
        self.owner_of_episode[episode] = branch
        target = self.out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return jsonl

    def collected(self, require_complete: bool) -> CollectedStaging:
        """The union's record; with `require_complete`, a `MergeError` when episodes are missing or failed."""
        failed = self.failed
        staged = sorted({e for eps in self.by_shard.values() for e in eps} - set(failed))
        missing = sorted(self.planned - set(staged) - set(failed))
        if require_complete and (missing or failed):
            parts = []
            if missing:
                parts.append(f"episodes {missing} have no staged annotations")
            if failed:
                parts.append(f"episodes {sorted(failed)} failed ({next(iter(failed.values()))[0]})")
            raise MergeError("; ".join(parts) + ". Resubmit the failed shards, or merge with require_complete=False.")
        return CollectedStaging(staging_dir=self.out, episodes=staged, by_shard=self.by_shard,
                                files=len(self.owner_of_file), failed=failed, missing=missing, runs=self.runs)


def merge_shards(
    repo_id: str,
    shards: Sequence[ShardSource | str],
    *,
    write: Callable[[Path, list[int]], T],
    work_dir: str | Path,
    token: str | None = None,
    api: HfApi | None = None,
    require_complete: bool = True,
) -> MergeResult[T]:
    """Collect the shards' staging (checked union) and call `write(staging_dir, episodes)` once with it.

    `write` is supplied by the annotation pipeline: it reads the staging dir (Staging layout), validates the
    rows, writes the dataset and usually ends with `push_dataset` — one push for the whole run.
    """
    collected = collect_shards(repo_id, shards, work_dir=work_dir, token=token, api=api,
                               require_complete=require_complete)
    logger.info("merging %d episodes from %d shards (%d files)", len(collected.episodes), len(collected.by_shard),
                collected.files)
    return MergeResult(collected=collected, written=write(collected.staging_dir, collected.episodes))


def shard_complete(api: HfApi, repo_id: str, branch: str, token: str | None = None) -> bool:
    """Whether the shard's branch carries its completion marker (`SHARD_MARKER`)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    with hub_errors("checking a shard branch", repo_id=repo_id, revision=branch, token=token):
        try:
            found = api.get_paths_info(repo_id, [SHARD_MARKER], revision=branch, repo_type=REPO_TYPE, token=token)
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return False
    return any(getattr(f, "path", None) == SHARD_MARKER for f in found)


def delete_shard_branches(repo_id: str, branches: Sequence[str], *, token: str | None = None, api: HfApi | None = None) -> None:
    """Remove the shard branches after a successful merge and push (their content is in the final dataset),
    so the final repo shows only its `main`. A branch already gone is fine (a re-run of the merge)."""
    from huggingface_hub.errors import RevisionNotFoundError

    api = get_api(api, token)
    for branch in branches:
        with hub_errors("deleting a shard branch", repo_id=repo_id, revision=branch, token=token, write=True):
            try:
                api.delete_branch(repo_id, branch=branch, repo_type=REPO_TYPE, token=token)
            except RevisionNotFoundError:
                continue
        logger.info("deleted merged shard branch %s of %s", branch, repo_id)


