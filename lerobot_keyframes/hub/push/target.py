"""Where a push goes and whether it may: the source a root came from, its visibility, the target's rules.

The rules (shared with annotate's preflight): the source repo is written only with `allow_source_overwrite`;
a new repo is private unless `private=False`, and `private=False` is refused when the source is known and
not known public; an existing public repo is refused as the target of a copy of a private or unknown source.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ...language.provenance import ProvenanceError, read_provenance, recorded_source
from .._api import repo_info
from ..errors import HubError

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import DatasetInfo

# What this token can tell about a repo: public, private, or unknown (absent, or private and invisible).
Visibility = Literal["public", "private", "unknown"]
_CACHE_SNAPSHOT = re.compile(r"datasets--(?P<ns>[^/]+?)--(?P<name>[^/]+)/snapshots/[0-9a-f]{40}$")


def cache_snapshot(root: Path) -> tuple[str, str] | None:
    """(`user/name`, commit) when `root` is a Hugging Face cache snapshot of a dataset repo.

    Such a root is never written to: its files are links into the shared blob store, and its content must
    keep matching the commit it is named after.
    """
    match = _CACHE_SNAPSHOT.search(root.as_posix())
    return (f"{match['ns']}/{match['name']}", root.name) if match else None


def source_from_provenance(root: Path) -> tuple[str | None, str | None]:
    """(source repo id, revision) recorded in `meta/annotation_provenance.json` by the run that wrote `root`."""
    try:
        source = recorded_source(read_provenance(root))
    except ProvenanceError as exc:
        raise HubError(f"{exc}; it names the source this push must not overwrite") from None
    return source.repo_id, source.revision


def source_visibility(api: HfApi, source_repo_id: str | None, *, token: str | None = None) -> Visibility:
    """Whether the source repo is known `public`, `private`, or `unknown` (no source, absent or invisible).

    Args:
        api (`HfApi`):
            The client.
        source_repo_id (`str`, *optional*):
            The source dataset repo (None: a root with no known source).
        token (`str`, *optional*):
            The Hugging Face token.
    """
    info = repo_info(api, source_repo_id, revision=None, token=token) if source_repo_id is not None else None
    private = getattr(info, "private", None)
    if private is None:
        return "unknown"
    return "private" if private else "public"


def check_push_target(api: HfApi, repo_id: str, *, source_repo_id: str | None, private: bool | None,
                      allow_source_overwrite: bool, token: str | None = None) -> tuple[bool, DatasetInfo | None]:
    """The rules of a push target (module docstring), checked before anything is written.

    Called by `push_dataset` and by annotate's preflight. A root with no known source (a local dataset
    with no `source_repo_id` in its provenance) becomes public only by an explicit `private=False`.

    Args:
        api (`HfApi`):
            The client.
        repo_id (`str`):
            The target dataset repo, `user/name`.
        source_repo_id (`str`, *optional*):
            The repo the dataset came from, if known.
        private (`bool`, *optional*):
            The visibility asked for (None: private for a new repo).
        allow_source_overwrite (`bool`):
            Whether `repo_id` may be the source itself.
        token (`str`, *optional*):
            The Hugging Face token.

    Returns:
        `tuple[bool, DatasetInfo | None]`: whether the target must stay private, and its info (None: new repo).

    Raises:
        `HubError`: the push is refused (the message says why and what to do instead).
    """
    if repo_id.count("/") != 1:
        raise HubError(f"{repo_id!r} is not a repo id of the form 'user/name'")
    if source_repo_id is not None and repo_id == source_repo_id and not allow_source_overwrite:
        raise HubError(
            f"refusing to push to {repo_id}: it is the source dataset. Push to a new repo (--new_repo_id="
            f"<you>/<name>), or pass allow_source_overwrite=True (--allow_source_overwrite) to rewrite the source."
        )
    copy_of_source = source_repo_id is not None and source_repo_id != repo_id
    must_stay_private = copy_of_source and source_visibility(api, source_repo_id, token=token) != "public"
    if private is False and must_stay_private:
        raise HubError(
            f"refusing to make {repo_id} public: its source {source_repo_id} is private or could not be checked. "
            "An annotated copy of a private dataset is never published; push privately (the default)."
        )
    target = repo_info(api, repo_id, revision=None, token=token)
    if target is not None and must_stay_private and getattr(target, "private", None) is False:
        raise HubError(
            f"refusing to push to {repo_id}: it is public and the source {source_repo_id} is private or could "
            "not be checked. Push to a private repo instead."
        )
    return must_stay_private, target
