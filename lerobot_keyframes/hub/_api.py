"""The `HfApi` client every Hub step uses: the caller's own (tests inject one), else one for `token`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import hub_errors

if TYPE_CHECKING:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import DatasetInfo

REPO_TYPE = "dataset"  # every repo this package reads or writes is a dataset repo


def get_api(api: HfApi | None, token: str | None) -> HfApi:
    """`api` when given, else an `HfApi(token=token)` (huggingface_hub is imported only here, on use)."""
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi(token=token)


def repo_info(api: HfApi, repo_id: str, *, revision: str | None, token: str | None) -> DatasetInfo | None:
    """The dataset repo's info, or None when it does not exist (or is private and invisible to this token)."""
    from huggingface_hub.errors import RepositoryNotFoundError

    with hub_errors("reading repo info", repo_id=repo_id, revision=revision, token=token):
        try:
            return api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision, token=token)
        except RepositoryNotFoundError:
            return None
