"""Hub failures as `HubError`s whose message says what happened and what to do; tokens never appear in them.

`huggingface_hub` raises `HfHubHTTPError` subclasses (`RepositoryNotFoundError`, `RevisionNotFoundError`,
`RemoteEntryNotFoundError`, ...) and httpx transport errors. `hub_errors(...)` turns them into one exception
type keyed by HTTP status, naming the action, repo and revision. Every message goes through `redact`, which
removes the active token and anything shaped like a Hugging Face token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9_]{8,}\b")
BEARER_PATTERN = re.compile(r"(?i)(authorization:\s*bearer\s+|bearer\s+)[^\s'\"]+")


class HubError(RuntimeError):
    """A Hub operation failed. `status` is the HTTP status (None for network errors or local checks)."""

    def __init__(self, message: str, *, status: int | None = None, repo_id: str | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(redact(message))
        self.status = status
        self.repo_id = repo_id
        self.request_id = request_id


def _active_tokens(extra: str | None = None) -> list[str]:
    tokens = [extra] if extra else []
    try:
        from huggingface_hub import get_token

        token = get_token()
        if token:
            tokens.append(token)
    except Exception:  # never let redaction itself fail
        pass
    return [t for t in tokens if isinstance(t, str) and len(t) >= 4]


def redact(text: str, token: str | None = None) -> str:
    """`text` without the active token (or `token`), bearer values, or anything that looks like an hf_ token."""
    for secret in _active_tokens(token):
        text = text.replace(secret, "***")
    text = BEARER_PATTERN.sub(lambda m: m.group(1) + "***", text)
    return TOKEN_PATTERN.sub("hf_***", text)


def _where(repo_id: str | None, revision: str | None, repo_type: str) -> str:
    if repo_id is None:
        return "the Hub"
    return f"{repo_type} repo {repo_id}" + (f" (revision {revision})" if revision else "")


def translate(exc: BaseException, *, action: str, repo_id: str | None = None, revision: str | None = None,
              repo_type: str = "dataset", token: str | None = None) -> HubError | None:
    """The `HubError` for a `huggingface_hub`/httpx exception, or None if `exc` is not a Hub failure."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    entry_not_found = remote_entry_not_found_error()

    where = _where(repo_id, revision, repo_type)
    if isinstance(exc, OfflineModeIsEnabled):
        return HubError(f"{action} on {where} needs the network, but HF_HUB_OFFLINE is set. Unset it (or set "
                        "HF_HUB_OFFLINE=0) and retry.", repo_id=repo_id)
    if isinstance(exc, HfHubHTTPError):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        server = getattr(exc, "server_message", None) or ""
        request_id = getattr(exc, "request_id", None)
        detail = f" Server said: {server.strip()}" if server.strip() else ""
        if status == 401:
            message = (f"{action} on {where} failed: authentication failed (401). The token is missing, invalid or "
                       "expired. Set HF_TOKEN to a valid token or run `hf auth login`.")
        elif status == 403:
            message = (f"{action} on {where} failed: permission denied (403). Your token can read but not write "
                       f"here, or {repo_id.split('/')[0] if repo_id else 'the namespace'} is not your user or one of "
                       "your organizations. Use a token with write access, or push to a repo in your own namespace "
                       "(e.g. --new_repo_id=<you>/<name>).")
        elif isinstance(exc, RevisionNotFoundError):
            message = (f"{action} on {where} failed: revision {revision!r} does not exist (404). Check the branch, "
                       "tag or commit name; `lerobot-keyframes info <repo_id>` lists what is there.")
        elif isinstance(exc, entry_not_found):
            message = (f"{action} on {where} failed: a file does not exist at that revision (404). The remote "
                       "changed since it was listed; re-run to compare again.")
        elif isinstance(exc, RepositoryNotFoundError) or status == 404:
            message = (f"{action} on {where} failed: repository not found (404). Check the repo id and that it is "
                       "a dataset repo; if it is private, your token must have access to it.")
        elif status in (409, 412):
            message = (f"{action} on {where} failed: conflict ({status}). Someone else changed the repo, branch or "
                       "tag at the same time (or it already exists). Re-run: the push compares against the new "
                       "state and uploads only what is still missing.")
        elif status is not None and status >= 500:
            message = (f"{action} on {where} failed: the Hub had a server error ({status}). Nothing is lost: "
                       "uploaded files are kept, and re-running the same command resumes where it stopped.")
        elif status == 429:
            message = f"{action} on {where} failed: rate limited (429). Wait a few minutes and re-run."
        else:
            message = f"{action} on {where} failed (HTTP {status})."
        if request_id:
            detail += f" Request id: {request_id}."
        return HubError(redact(message + detail, token), status=status, repo_id=repo_id, request_id=request_id)
    transport = transport_errors()
    if isinstance(exc, transport) or (isinstance(exc, RuntimeError) and isinstance(exc.__cause__, transport)):
        return HubError(f"{action} on {where} failed: the connection to the Hub was lost or refused "
                        f"({type(exc).__name__}). Check the network (and HF_ENDPOINT), then re-run: the push "
                        "resumes and uploads only what is missing.", repo_id=repo_id)
    return None


def remote_entry_not_found_error() -> type[Exception]:
    """huggingface_hub >= 1 raises `RemoteEntryNotFoundError` for a missing remote file; 0.x `EntryNotFoundError`."""
    from huggingface_hub import errors

    return getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)


def transport_errors() -> tuple[type[BaseException], ...]:
    """Network failures of the HTTP client huggingface_hub uses (httpx2, httpx or requests, by version)."""
    import importlib

    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests.exceptions", ("ConnectionError", "Timeout", "ChunkedEncodingError"))):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(mod, name) for name in names if hasattr(mod, name)]
    return tuple(found)


@contextmanager
def hub_errors(action: str, *, repo_id: str | None = None, revision: str | None = None, repo_type: str = "dataset",
               token: str | None = None) -> Iterator[None]:
    """Re-raise Hub and network failures inside the block as `HubError` (without chaining the original,
    whose request objects carry the Authorization header)."""
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        translated = translate(exc, action=action, repo_id=repo_id, revision=revision, repo_type=repo_type, token=token)
        if translated is None:
            raise
        raise translated from None
