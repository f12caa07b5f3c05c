"""Hub failures as `HubError`s whose message says what happened and what to do; tokens never appear in them.

`huggingface_hub` raises `HfHubHTTPError` subclasses (`RepositoryNotFoundError`, `RevisionNotFoundError`,
`RemoteEntryNotFoundError`, ...) and transport errors of its HTTP client (httpx, or requests on old versions).
`hub_errors(...)` turns them into one exception type keyed by HTTP status, naming the action, repo and revision;
what to do next depends on whether the block writes (`write=True`: re-running resumes) or reads what the cache
can serve (`fix=OFFLINE_FIX`: `HF_HUB_OFFLINE=1`). `network_message` is the same one line for a
network error caught anywhere. Every message goes through `redact`, which removes the active token and anything
shaped like a Hugging Face token.

One home below every folder that talks to the Hub: `dataset` (resolving and downloading a source) raises the
same errors as `hub`, whose `hub.errors` gives these names to its callers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9_]{8,}\b")
BEARER_PATTERN = re.compile(r"(?i)(authorization:\s*bearer\s+|bearer\s+)[^\s'\"]+")


OFFLINE_FIX = "set HF_HUB_OFFLINE=1 to use what the Hugging Face cache already holds"  # for reads the cache serves


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
              repo_type: str = "dataset", token: str | None = None, write: bool = False,
              fix: str | None = None) -> HubError | None:
    """The `HubError` for a `huggingface_hub`/httpx/requests exception, or None if `exc` is not a Hub failure.

    `write`: the block changes the Hub (the advice is to re-run, which resumes). `fix`: a remedy for a network
    error that needs no network (`OFFLINE_FIX` where the cache can serve the read; a local model directory)."""
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
        elif status in (409, 412) and write:
            message = (f"{action} on {where} failed: conflict ({status}). Someone else changed the repo, branch or "
                       "tag at the same time (or it already exists). Re-run: the push compares against the new "
                       "state and uploads only what is still missing.")
        elif status in (409, 412):
            message = (f"{action} on {where} failed: conflict ({status}). The repo changed while it was read; "
                       "re-run the same command.")
        elif status is not None and status >= 500 and write:
            message = (f"{action} on {where} failed: the Hub had a server error ({status}). Nothing is lost: "
                       "uploaded files are kept, and re-running the same command resumes where it stopped.")
        elif status is not None and status >= 500:
            message = (f"{action} on {where} failed: the Hub had a server error ({status}). Nothing was changed; "
                       "re-run the same command in a few minutes.")
        elif status == 429:
            message = f"{action} on {where} failed: rate limited (429). Wait a few minutes and re-run."
        else:
            message = f"{action} on {where} failed (HTTP {status})."
        if request_id:
            detail += f" Request id: {request_id}."
        return HubError(redact(message + detail, token), status=status, repo_id=repo_id, request_id=request_id)
    transport = transport_errors()
    if isinstance(exc, RuntimeError) and not isinstance(exc, transport) and isinstance(exc.__cause__, transport):
        exc = exc.__cause__
    if isinstance(exc, transport):
        return HubError(f"{action} on {where} failed: {network_message(exc, write=write, fix=fix)}", repo_id=repo_id)
    return None


def _request_url(exc: BaseException) -> str | None:
    """The URL the failed request went to (httpx raises RuntimeError for `.request` when it was never set)."""
    try:
        request = getattr(exc, "request", None)
    except RuntimeError:
        return None
    url = getattr(request, "url", None)
    return str(url) if url else None


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, _client_errors(TimeoutError, httpx="TimeoutException", requests="Timeout"))


def network_message(exc: BaseException, *, write: bool = False, fix: str | None = None) -> str:
    """One line for a network failure (no route, refused, timed out, dropped): which host, what happened, and
    what to do — check the network, proxy or HF_ENDPOINT, then re-run (a write: it resumes); `fix` adds a
    remedy that needs no network (a read the cache can serve: `OFFLINE_FIX`)."""
    from urllib.parse import urlsplit

    import huggingface_hub.constants as hf_constants

    endpoint = urlsplit(str(hf_constants.ENDPOINT))
    parts = urlsplit(_request_url(exc) or str(hf_constants.ENDPOINT))
    host = f"{parts.scheme}://{parts.netloc}"
    who = f"the Hub at {host}" if parts.netloc == endpoint.netloc else host
    detail = " ".join(str(exc).split())[:200] or "no details"
    what = f"{type(exc).__name__}: {detail}"
    if _is_timeout(exc):
        problem = f"{who} did not answer in time ({what})"
        check = ("Check the network, a proxy (HTTPS_PROXY) and HF_ENDPOINT, or allow more time "
                 "(HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT, in seconds)")
    else:
        unreachable = isinstance(exc, _client_errors(ConnectionRefusedError, httpx="ConnectError",
                                                     requests="ConnectionError"))
        problem = f"cannot reach {who} ({what})" if unreachable else f"the connection to {who} broke ({what})"
        check = "Check the network, a proxy (HTTPS_PROXY) and HF_ENDPOINT"
    if write:
        then = ", then re-run the same command: nothing is lost, and a push uploads only what is still missing."
    else:
        then = f"; or {fix}." if fix else ", then re-run the same command."
    return redact(f"{problem}. {check}{then}")


def remote_entry_not_found_error() -> type[Exception]:
    """huggingface_hub >= 1 raises `RemoteEntryNotFoundError` for a missing remote file; 0.x `EntryNotFoundError`."""
    from huggingface_hub import errors

    return getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)


def transport_errors() -> tuple[type[BaseException], ...]:
    """Network failures of the HTTP client huggingface_hub uses (httpx2, httpx or requests, by version)."""
    return _client_errors(ConnectionError, TimeoutError, httpx="TransportError",
                          requests="ConnectionError Timeout ChunkedEncodingError")


def _client_errors(*builtin: type[BaseException], httpx: str, requests: str) -> tuple[type[BaseException], ...]:
    """`builtin` plus the named exception classes of httpx2, httpx and requests, where installed."""
    import importlib

    found: list[type[BaseException]] = list(builtin)
    for module, names in (("httpx2", httpx), ("httpx", httpx), ("requests.exceptions", requests)):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(mod, name) for name in names.split() if hasattr(mod, name)]
    return tuple(found)


@contextmanager
def hub_errors(action: str, *, repo_id: str | None = None, revision: str | None = None, repo_type: str = "dataset",
               token: str | None = None, write: bool = False, fix: str | None = None) -> Iterator[None]:
    """Re-raise Hub and network failures inside the block as `HubError` (without chaining the original,
    whose request objects carry the Authorization header). `write=True` for blocks that change the Hub;
    `fix`: a remedy for a network error that needs no network (`OFFLINE_FIX` for reads the cache can serve)."""
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        translated = translate(exc, action=action, repo_id=repo_id, revision=revision, repo_type=repo_type, token=token,
                               write=write, fix=fix)
        if translated is None:
            raise
        raise translated from None
