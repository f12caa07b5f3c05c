"""The one guard every writer to the Hub runs before it uploads anything.

`push`, `annotate --push_to_hub`, `merge` (all through `push_dataset`) and `keyframes --push_to_hub` (through
`tables.push_keyframes_table`) call it; nothing is created, uploaded, tagged or deleted before it passes. It refuses:

- a root whose in-place write was killed midway (`language.journal`): its data shards and meta/info.json may
  disagree, so it is neither read nor pushed;
- a push that would cost an episode of the target its language rows (an episode with rows there and none in the
  root, an episode the run did not annotate or that failed with fewer rows than there) or drop the language
  columns the target declares, unless `allow_row_loss`. Only the data shards that differ from the root's are read
  on the Hub, and of them only the episode index and the two language columns (byte ranges);
- a push onto a repo that may be the source of the root: the source named by the caller, the cache snapshot or
  the provenance (`check_push_target`), and when none names a Hub source, any repo that holds a dataset this
  package did not publish, or one published from another source (its own provenance and card say so). Unsure
  means refused; `allow_source_overwrite` is the explicit yes. A pull request overwrites nothing: the owner
  merges it, so it skips this rule (not the rows rule);
- a keyframes table pushed onto the source or onto a repo that holds a LeRobot dataset (the table would replace
  its card and mix two datasets in one repo).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...dataset.layout import INFO_PATH
from ...language.journal import PendingWriteError, check_no_pending_write
from ...language.provenance import PROVENANCE_PATH, ProvenanceError, read_provenance, recorded_source
from .._api import REPO_TYPE, repo_info
from ..errors import HubError, hub_errors
from .files import file_matches_remote
from .remote import download_text

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

logger = logging.getLogger(__name__)

CARD_TAG = "lerobot-keyframes"  # every card this package writes carries it (card.LEROBOT_TAGS)
ALLOW_ROW_LOSS = "--allow_row_loss=true"
ALLOW_SOURCE = "--allow_source_overwrite=true"
RANGE_BLOCK = 64 * 1024  # bytes per range request when a remote data shard's language columns are read


@dataclass(frozen=True)
class Remote:
    """What the target holds at the commit a push builds on: its files (path -> `RepoFile`) at `commit`."""

    repo_id: str
    commit: str
    files: Mapping[str, RepoFile]

    @property
    def holds_dataset(self) -> bool:
        return INFO_PATH in self.files

    def data_shards(self) -> list[str]:
        return sorted(p for p in self.files if p.startswith("data/") and p.endswith(".parquet"))


@dataclass(frozen=True)
class RowLoss:
    """Episodes that would lose language rows: episode -> (rows on the Hub, rows in the root)."""

    episodes: dict[int, tuple[int, int]]
    dropped_columns: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.episodes or self.dropped_columns)


def check_root(root: str | Path) -> None:
    """Refuse a root whose in-place write was interrupted (as `HubError`, before anything is uploaded)."""
    try:
        check_no_pending_write(root, action="push")
    except PendingWriteError as exc:
        raise HubError(str(exc)) from None


# -- rows ------------------------------------------------------------------------------------------------------
def shard_row_counts(source: Any) -> Counter:
    """Language rows per episode in one data shard (a path or an open file): persistent rows once per episode,
    every event row. Reads only `episode_index` and the language columns."""
    import numpy as np  # pyarrow and the schema load only when rows are counted
    import pyarrow.parquet as pq

    from ...language.schema import LANGUAGE_COLUMNS, LANGUAGE_PERSISTENT

    parquet = pq.ParquetFile(source)
    names = parquet.schema_arrow.names
    cols = [c for c in LANGUAGE_COLUMNS if c in names]
    counts: Counter = Counter()
    if not cols or "episode_index" not in names:
        return counts
    table = parquet.read(columns=["episode_index", *cols])
    episodes = table["episode_index"].to_numpy()
    for col in cols:
        lengths = np.asarray(table[col].combine_chunks().value_lengths().fill_null(0))
        for e in np.unique(episodes):
            sel = lengths[episodes == e]
            counts[int(e)] += int(sel[0]) if col == LANGUAGE_PERSISTENT and len(sel) else int(sel.sum())
    return counts


def local_row_counts(root: str | Path) -> dict[str, Counter]:
    """relative shard path -> language rows per episode, for every data shard of the root."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): shard_row_counts(p) for p in sorted((root / "data").rglob("*.parquet"))
            if ".tmp" not in p.name}


def remote_row_counts(api: HfApi, remote: Remote, shards: Collection[str], token: str | None) -> Counter:
    """Language rows per episode in `shards` of the remote, read by byte range (footer + three columns)."""
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem(endpoint=getattr(api, "endpoint", None), token=token)
    counts: Counter = Counter()
    for path in sorted(shards):
        with hub_errors(f"reading the language rows of {path}", repo_id=remote.repo_id, revision=remote.commit,
                        token=token):
            # small blocks: the footer and three column chunks, not the default 5 MB read-ahead
            with fs.open(f"datasets/{remote.repo_id}@{remote.commit}/{path}", "rb", block_size=RANGE_BLOCK) as f:
                counts.update(shard_row_counts(f))
    return counts


def _language_columns(info_text: str | None) -> set[str]:
    from ...language.schema import LANGUAGE_COLUMNS

    try:
        features = json.loads(info_text or "{}").get("features") or {}
    except (ValueError, AttributeError):
        return set()
    return {c for c in LANGUAGE_COLUMNS if c in features}


def row_loss(api: HfApi, root: Path, remote: Remote, *, annotated: Collection[int] | None = None,
             failed: Collection[int] = (), token: str | None = None) -> RowLoss:
    """What the push of `root` onto `remote` would cost in language rows (see the module docstring).

    `annotated`: the episodes the run that wrote the root annotated (they may get fewer rows, not none); None
    when unknown (a standalone push). `failed`: episodes the root's provenance records as failed (they may not
    get fewer rows)."""
    local_info = (root / INFO_PATH).read_text(encoding="utf-8") if (root / INFO_PATH).is_file() else None
    remote_info = None
    if INFO_PATH in remote.files:
        remote_info = _download_text(api, remote, INFO_PATH, token)
    dropped = tuple(sorted(_language_columns(remote_info) - _language_columns(local_info)))
    local = local_row_counts(root)
    changed = [p for p in remote.data_shards()
               if p not in local or not file_matches_remote(root / p, remote.files[p])]
    theirs = remote_row_counts(api, remote, changed, token) if changed else Counter()
    for path, counts in local.items():  # an unchanged shard has the same rows on both sides
        if path in remote.files and path not in changed:
            theirs.update(counts)
    ours: Counter = Counter()
    for counts in local.values():
        ours.update(counts)
    done, failed = (None if annotated is None else set(annotated)), set(failed)
    losing = {}
    for e, had in sorted(theirs.items()):
        now = ours.get(e, 0)
        if had > 0 and (now == 0 or (now < had and ((done is not None and e not in done) or e in failed))):
            losing[e] = (had, now)
    return RowLoss(losing, dropped)


def check_rows_kept(api: HfApi, root: Path, remote: Remote, *, annotated: Collection[int] | None = None,
                    allow_row_loss: bool = False, token: str | None = None) -> RowLoss:
    """Refuse (`HubError`) a push that would cost the remote language rows or columns, unless `allow_row_loss`."""
    if not remote.holds_dataset:
        return RowLoss({})
    record = read_provenance(root)
    failed = [int(e) for e in ((record or {}).get("failed_episodes") or {}) if str(e).isdigit()]
    loss = row_loss(api, root, remote, annotated=annotated, failed=failed, token=token)
    if not loss or allow_row_loss:
        if loss:
            logger.warning("pushing %s to %s although %d episode(s) lose language rows (--allow_row_loss)", root,
                           remote.repo_id, len(loss.episodes))
        return loss
    where = f"refusing to push {root} to {remote.repo_id}"
    if loss.dropped_columns:
        raise HubError(
            f"{where}: the root's meta/info.json has no {' / '.join(loss.dropped_columns)} column, which "
            f"{remote.repo_id}@{remote.commit[:10]} has; the push would drop its language annotations. Nothing was "
            f"pushed. Push the annotated root, or pass {ALLOW_ROW_LOSS} to replace the repo's dataset anyway.",
            repo_id=remote.repo_id)
    e, (had, would) = next(iter(loss.episodes.items()))
    raise HubError(
        f"{where}: {len(loss.episodes)} episode(s) would lose language rows there (episode {e}: {had} -> {would}; "
        f"episodes {sorted(loss.episodes)[:20]}) because the root lacks them (a failed or unannotated episode, or "
        f"a plain copy). Nothing was pushed. Re-run them (annotate --only_episodes=...) or pass {ALLOW_ROW_LOSS} "
        "to replace the repo's rows anyway.", repo_id=remote.repo_id)


# -- the source ------------------------------------------------------------------------------------------------
def _download_text(api: HfApi, remote: Remote, path: str, token: str | None) -> str | None:
    return download_text(api, remote.repo_id, path, revision=remote.commit, token=token)


def remote_publisher(api: HfApi, remote: Remote, token: str | None) -> tuple[bool, dict[str, Any] | None]:
    """(whether this package published the remote dataset, the remote's provenance record if it has one)."""
    record = None
    if PROVENANCE_PATH in remote.files:
        text = _download_text(api, remote, PROVENANCE_PATH, token)
        try:
            record = json.loads(text) if text else None
        except ValueError:
            record = None
        record = record if isinstance(record, dict) else None
    if record is not None:
        return True, record
    if "README.md" not in remote.files:
        return False, None
    from huggingface_hub import DatasetCard

    text = _download_text(api, remote, "README.md", token) or ""
    try:
        tags = DatasetCard(text, ignore_metadata_errors=True).data.get("tags") or []
    except Exception:  # noqa: BLE001 - an unparsable card is not ours
        return False, None
    return CARD_TAG in tags, None


def check_not_source(api: HfApi, root: Path, remote: Remote, *, source_repo_id: str | None,
                     allow_source_overwrite: bool = False, token: str | None = None) -> None:
    """Refuse (`HubError`) to overwrite a remote dataset that may be the root's source (module docstring).

    `source_repo_id` is the root's known Hub source (`check_push_target` already refused it as the target)."""
    if allow_source_overwrite or source_repo_id is not None or not remote.holds_dataset:
        return
    try:
        record = read_provenance(root)
    except ProvenanceError as exc:
        raise HubError(f"{exc}; it names the source this push must not overwrite") from None
    ours, theirs = remote_publisher(api, remote, token)
    repo, where = remote.repo_id, f"refusing to push {root} to {remote.repo_id}"
    if record is None:
        if ours:
            return  # a plain root onto a repo this package published: its rows are checked separately
        raise HubError(
            f"{where}: {repo} holds a dataset that lerobot_keyframes did not publish, and the root names no source, "
            f"so {repo} may be the dataset it was copied from. Nothing was pushed. Push to a new repo "
            f"(--new_repo_id=<you>/<name>), or pass {ALLOW_SOURCE} to rewrite {repo}.", repo_id=repo)
    mine = recorded_source(record)
    other = recorded_source(theirs)
    if mine.identity is not None and other.identity == mine.identity and other.repo_id is None:
        return  # the same local source's annotated copy, pushed again
    if not ours:
        why = f"{repo} holds a dataset that lerobot_keyframes did not publish"
    elif theirs is None:
        why = f"{repo} was published from a root with no recorded source"
    else:
        why = f"{repo} holds the annotated copy of {other.repo_id or other.identity or 'an unknown source'}"
    named = mine.identity or "no source"
    raise HubError(
        f"{where}: {why}, and the root's provenance names {named} (no Hub repo), so {repo} may be the dataset it "
        f"was made from. Nothing was pushed. Push to a new repo (--new_repo_id=<you>/<name>), or pass "
        f"{ALLOW_SOURCE} to rewrite {repo}.", repo_id=repo)


# -- keyframe tables -------------------------------------------------------------------------------------------
def check_table_target(api: HfApi, repo_id: str, *, source: str | None, token: str | None = None) -> None:
    """Refuse (`HubError`) a keyframes table push onto its source or onto a repo holding a LeRobot dataset."""
    if source is not None and repo_id == source:
        raise HubError(f"--push_to_hub {repo_id} is the source dataset; push the keyframes table to a new repo "
                       "(it would replace the source's card and files)", repo_id=repo_id)
    info = repo_info(api, repo_id, revision=None, token=token)
    if info is None:
        return
    from huggingface_hub.hf_api import RepoFile

    with hub_errors("listing the target", repo_id=repo_id, token=token):
        files = [f.path for f in api.list_repo_tree(repo_id, recursive=True, repo_type=REPO_TYPE, token=token)
                 if isinstance(f, RepoFile)]
    if INFO_PATH in files:
        raise HubError(f"refusing to push the keyframes table to {repo_id}: it holds a LeRobot dataset "
                       f"({INFO_PATH}); the table would replace its card and mix two datasets in one repo. Push it to "
                       "a repo of its own.", repo_id=repo_id)
