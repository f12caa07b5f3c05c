"""Keyframe tables on the Hub: `keyframes --push_to_hub` (`run_keyframes`) and the table as it may be published.

A keyframes table (`transform.KeyframeTransform` over an episode table) holds the frames and the messages that
reference them. Its blocks' `file` is relative to the dataset root already; the `root` column is the one path
of this machine in it, so it is dropped before the table goes up (`publishable_table`; a table written by an
older version also gets its absolute `file`s made relative). The guard (`push.guard.check_table_target`) runs
before any frame is decoded: never onto the source, never onto a repo that holds a LeRobot dataset, never a
public table from a private source.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from ..dataset.source import is_local
from ..transform import extract_keyframes
from ..transform.messages import root_relative
from ..utils.public import is_local_path, local_paths_in
from ._api import get_api
from .errors import HubError, hub_errors
from .push.guard import check_table_target
from .push.target import source_visibility

if TYPE_CHECKING:
    from datasets import Dataset
    from huggingface_hub import HfApi

    from ..transform import KeyframesConfig

logger = logging.getLogger(__name__)

LOCAL_COLUMNS = ("root",)  # machine-local columns of an episode table (the dataset root on this disk)


def _relative_messages(messages: list[dict[str, Any]], root: str | None) -> list[dict[str, Any]]:
    return [{**m, "content": [{**b, "file": root_relative(b.get("file"), root)} for b in m.get("content") or []]}
            for m in messages]


def publishable_table(table: Dataset) -> Dataset:
    """`table` without paths of this machine: `root` dropped, every block's `file` relative to it.

    Raises:
        `HubError`: another column still holds an absolute path (named, with an example).
    """
    if "messages" in table.column_names and "root" in table.column_names:
        messages = table.select_columns(["messages"])["messages"]
        if local_paths_in([b.get("file") for m in messages for msg in m for b in msg.get("content") or []]):
            logger.info("making the blocks' file paths relative to the dataset root before the push")
            table = table.map(lambda row: {"messages": _relative_messages(row["messages"], row["root"])},
                              features=table.features, desc="relative file paths")
    table = table.remove_columns([c for c in LOCAL_COLUMNS if c in table.column_names])
    for name, feature in table.features.items():  # a column of paths (another root, a cache folder)
        if getattr(feature, "dtype", None) == "string":
            found = [v for v in table.select_columns([name])[name] if isinstance(v, str) and is_local_path(v)]
            if found:
                raise HubError(f"refusing to push the table: column {name!r} holds paths of this machine (e.g. "
                               f"{found[0]}); drop it (table.remove_columns([{name!r}])) first")
    if "messages" in table.column_names:
        files = [b.get("file") for m in table.select_columns(["messages"])["messages"] for msg in m
                 for b in msg.get("content") or []]
        found = local_paths_in(files)
        if found:
            raise HubError(f"refusing to push the table: its messages reference files by paths of this machine "
                           f"(e.g. {found[0]}) and it has no root column to make them relative")
    return table


def check_table_push(api: HfApi, repo_id: str, *, source: str | None, private: bool, token: str | None = None) -> None:
    """The guard of a table push, before any work: not the source, not a LeRobot dataset repo, never a public
    table of a private (or unknown) Hub source."""
    check_table_target(api, repo_id, source=source, token=token)
    if private is False and source is not None and not is_local(source):
        if source_visibility(api, source, token=token) != "public":
            raise HubError(f"refusing to make the keyframes table {repo_id} public: its source {source} is private or "
                           "could not be checked, and the table holds its frames. Push it privately (the default).",
                           repo_id=repo_id)


def push_keyframes_table(table: Dataset, repo_id: str, *, source: str | None = None, private: bool = True,
                         token: str | None = None, api: HfApi | None = None, checked: bool = False) -> Any:
    """Push a keyframes table with `datasets` (`Dataset.push_to_hub`), guarded and without local paths.

    Args:
        table (`Dataset`):
            The table (`KeyframeTransform.map` of an episode table).
        repo_id (`str`):
            The dataset repo to push to.
        source (`str`, *optional*):
            The dataset the table was made from (a Hub repo id or a local root).
        private (`bool`, *optional*, defaults to `True`):
            The visibility of a new repo.
        checked (`bool`, *optional*):
            The guard already ran (`run_keyframes` runs it before decoding).

    Returns:
        What `Dataset.push_to_hub` returns (the commit).
    """
    api = get_api(api, token)
    if not checked:
        check_table_push(api, repo_id, source=source, private=private, token=token)
    table = publishable_table(table)
    logger.info("pushing %d episodes to %s (private=%s)", len(table), repo_id, private)
    with hub_errors("pushing the keyframes table", repo_id=repo_id, token=token, write=True):
        return table.push_to_hub(repo_id, private=private, token=token)


def run_keyframes(config: KeyframesConfig, *, token: str | None = None, api: HfApi | None = None) -> Dataset:
    """`lerobot-keyframes keyframes`: `transform.extract_keyframes`, and with `push_to_hub` the guarded push.

    The Hub target is checked before the first frame is decoded."""
    target = config.push_to_hub
    if target:
        check_table_push(get_api(api, token), target, source=config.source, private=config.private, token=token)
    result = extract_keyframes(dataclasses.replace(config, push_to_hub=None))
    if target:
        push_keyframes_table(result, target, source=config.source, private=config.private, token=token, api=api,
                             checked=True)
    return result


__all__ = ["LOCAL_COLUMNS", "HubError", "check_table_push", "publishable_table", "push_keyframes_table",
           "run_keyframes"]
