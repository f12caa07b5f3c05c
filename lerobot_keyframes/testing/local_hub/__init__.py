"""A local, in-memory Hugging Face Hub for tests: stock `huggingface_hub` and `datasets` talk to it over HTTP.

Why: push, download, tag and Jobs code must be tested against the real wire protocol, never the public Hub.
The server keeps git-like state per repo (commits with parents and ids, branches, tags, an LFS object
store) and answers the endpoints `huggingface_hub` 2.x uses with the same status codes and `X-Error-Code`
headers as the Hub, so client-side error classes (`RepositoryNotFoundError`, `RevisionNotFoundError`,
`RemoteEntryNotFoundError`, ...) come out as they would in production.

    hub = LocalHub()
    with hub as url:                      # the endpoint, e.g. http://127.0.0.1:43121
        # HF_ENDPOINT=url, HF_TOKEN=LocalHub.TOKEN, HF_HUB_DISABLE_XET=1
        hub.fail_next("commit", status=500)   # fault injection
        ...

Uploads must go through the LFS protocol (`HF_HUB_DISABLE_XET=1`); Xet is not implemented.
Faults: `fail_next(route, status)` answers an error, `drop_next(route, after_bytes)` reads part of the
request body and closes the connection without answering (an interrupted upload), `fail_range(...)` fails or
damages (short body, wrong range) range downloads from a byte offset on. `set_latency(seconds, route)` delays
answers (a far-away Hub). Every request is recorded with the body bytes sent and its `Range` header.

Layout: `storage` (repos, commits, objects), `base` (request plumbing, access rules), one mixin per API
family (`repos`, `uploads`, `downloads`, `jobs`), `handler` (routing), `state` (tokens, jobs, faults, request
records: what the handlers read), `server` (`LocalHub`: the lifecycle).
"""

from __future__ import annotations

from .base import HubHTTPError
from .server import LocalHub, iter_repo_files
from .state import ROUTES, Fault, RequestRecord
from .storage import DEFAULT_GITATTRIBUTES, LFS_THRESHOLD, Commit, FileEntry, Repo, git_blob_oid, lfs_pointer

__all__ = [
    "DEFAULT_GITATTRIBUTES",
    "LFS_THRESHOLD",
    "ROUTES",
    "Commit",
    "Fault",
    "FileEntry",
    "HubHTTPError",
    "LocalHub",
    "Repo",
    "RequestRecord",
    "git_blob_oid",
    "iter_repo_files",
    "lfs_pointer",
]
