"""Byte ranges of one file of a Hub repo at one commit, through huggingface_hub's own HTTP client.

The URL is `hf_hub_url(repo, path, revision=<commit>)` (the endpoint as huggingface_hub resolves it), the
headers `build_hf_headers()` (the user's token as huggingface_hub resolves it), the request `http_backoff`
(huggingface_hub's retries on 429/5xx and dropped connections; its shared per-process session, rebuilt after
fork). What comes back is checked before anyone decodes it: a `206` whose `Content-Range` is exactly the
range asked and whose body has exactly that many bytes. A short or mismatched answer is retried, then refused;
it is never handed to a decoder.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# answers that were not the asked bytes (short body, wrong Content-Range) are asked again this many times
WRONG_ANSWER_RETRIES = 2
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class RangeFetchError(RuntimeError):
    """A byte range of a Hub file could not be read (after retries). `status` is the last HTTP status, if any."""

    def __init__(self, reason: str, *, file: str, status: int | None = None, start: int | None = None,
                 end: int | None = None) -> None:
        self.reason, self.file, self.status, self.start, self.end = reason, file, status, start, end
        where = f" bytes {start}-{end - 1}" if start is not None and end is not None else ""
        status_text = f" (HTTP {status})" if status else ""
        super().__init__(f"{file}{where}: {reason}{status_text}")

    def __reduce__(self):  # keep the attributes through pickling (datasets.map workers)
        return (_rebuild, (self.reason, self.file, self.status, self.start, self.end))


def _rebuild(reason: str, file: str, status: int | None, start: int | None, end: int | None) -> RangeFetchError:
    return RangeFetchError(reason, file=file, status=status, start=start, end=end)


@dataclass(frozen=True)
class HubFile:
    """One file of a Hub repo, pinned to a commit (its bytes cannot change under a run)."""

    repo_id: str
    commit: str
    path: str  # inside the repo
    repo_type: str = "dataset"

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.commit[:8]}/{self.path}"

    def url(self) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo_id, self.path, repo_type=self.repo_type, revision=self.commit)


def offline() -> bool:
    import huggingface_hub.constants as hf_constants

    return bool(hf_constants.HF_HUB_OFFLINE)


def fetch_range(file: HubFile, start: int, end: int, *, may_end_early: bool = False) -> tuple[bytes, int]:
    """Bytes [start, end) of `file` and the file's total size, or `RangeFetchError` naming the HTTP status.

    `may_end_early`: the file's size is not known yet, so a range clipped at the end of the file is the answer."""
    if offline():
        raise RangeFetchError("not in the range cache and HF_HUB_OFFLINE=1 (run once online to cache it)",
                              file=str(file), start=start, end=end)
    import huggingface_hub.constants as hf_constants
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff

    headers = build_hf_headers()
    headers["Range"] = f"bytes={start}-{end - 1}"
    url = file.url()
    problem = ""
    for attempt in range(WRONG_ANSWER_RETRIES + 1):
        try:
            response = http_backoff("GET", url, headers=headers, timeout=hf_constants.HF_HUB_DOWNLOAD_TIMEOUT)
            hf_raise_for_status(response)
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            phrase = getattr(exc.response, "reason_phrase", "") if exc.response is not None else ""
            said = exc.server_message or phrase or _first_line(exc)
            raise RangeFetchError(f"the Hub refused the range request ({said})", file=str(file), status=status,
                                  start=start, end=end) from exc
        except Exception as exc:  # network errors left after http_backoff's retries (httpx's own classes)
            raise RangeFetchError(f"the range request failed after retries ({type(exc).__name__}: {exc})",
                                  file=str(file), start=start, end=end) from exc
        data, size, problem = _checked(response, start, end, may_end_early)
        if not problem:
            return data, size
        logger.warning("%s bytes %d-%d: %s; asking again (%d/%d)", file, start, end - 1, problem, attempt + 1,
                       WRONG_ANSWER_RETRIES)
    raise RangeFetchError(f"the Hub's answer was not the bytes asked ({problem})", file=str(file),
                          status=response.status_code, start=start, end=end)


def _checked(response: object, start: int, end: int, may_end_early: bool) -> tuple[bytes, int, str]:
    """(data, file size, "") for a correct answer, else (b"", 0, what is wrong)."""
    status = response.status_code  # type: ignore[attr-defined]
    body: bytes = response.content  # type: ignore[attr-defined]
    header = response.headers.get("Content-Range", "")  # type: ignore[attr-defined]
    if status == 200:  # the server ignored Range: the whole file came back; keep the part asked
        if end <= len(body) or (may_end_early and start < len(body)):
            return body[start:end], len(body), ""
        return b"", 0, f"a full answer of {len(body)} bytes to a range request ending at byte {end}"
    if status != 206:
        return b"", 0, f"HTTP {status} to a range request"
    match = _CONTENT_RANGE.match(header.strip())
    if match is None:
        return b"", 0, f"no usable Content-Range header ({header!r})"
    first, last, size = int(match[1]), int(match[2]), match[3]
    if may_end_early and size != "*" and first == start and last + 1 == int(size) < end:
        end = int(size)  # clipped at the end of the file
    if (first, last + 1) != (start, end):
        return b"", 0, f"Content-Range {header!r} is not the range asked"
    if len(body) != end - start:
        return b"", 0, f"a short answer: {len(body)} of {end - start} bytes"
    return body, int(size) if size != "*" else -1, ""


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
