"""Reading a Hub dataset's videos by byte range, pinned to the commit the dataset was loaded at.

`video_access` is the one choice a user makes (`--video_access`, `video_access=`):

- "download": today's behaviour: the videos a run needs are downloaded whole into the Hugging Face cache first;
- "stream": every video is decoded from HTTP range reads of the samples its frames need (header by range too);
- "auto" (default): stream, except that a file is downloaded whole when a decode would need more than
  `AUTO_STREAM_MAX_SHARE` of the bytes of the episodes it asks frames from (dense sampling: a download is then
  as cheap and one request), or when its header cannot be trusted, or with the ffmpeg CLI video backend.

With `HF_HUB_OFFLINE=1`, a file in the Hugging Face cache is read from there, anything else from the range
cache; a range that is in neither is an error naming the file, episode, camera and time.

Pieces: `mp4` (the sample table from the header), `ranges` (what a decode reads), `hub` (range requests through
huggingface_hub), `cache` (the on-disk range cache), `video` (`RemoteVideo`: header, held bytes, prefetch, the
decoders' file-like), `stats` (bytes and requests per file).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal, get_args

from .hub import HubFile, RangeFetchError
from .mp4 import SampleTable, UntrustedHeader
from .stats import FileStats, RemoteStats, remote_stats, reset_remote_stats, stats_registry
from .video import registry

logger = logging.getLogger(__name__)

VideoAccess = Literal["auto", "stream", "download"]
VIDEO_ACCESS: tuple[str, ...] = get_args(VideoAccess)
DEFAULT_VIDEO_ACCESS: VideoAccess = "auto"
# "auto" downloads a file whole when one decode needs more than this share of the bytes of the episodes it
# reads frames from (see README, "Reading from the Hub", for the measurements behind it)
AUTO_STREAM_MAX_SHARE = 0.5

_COMMIT = re.compile(r"^[0-9a-f]{40}$")

__all__ = ["AUTO_STREAM_MAX_SHARE", "DEFAULT_VIDEO_ACCESS", "VIDEO_ACCESS", "FileStats", "HubFile",
           "RangeFetchError", "RemoteStats", "SampleTable", "UntrustedHeader", "VideoAccess", "check_video_access",
           "download_whole", "hub_file", "log_summary", "remote_stats", "reset_remote_stats", "snapshot_commit",
           "snapshot_repo"]


def check_video_access(value: str) -> None:
    if value not in VIDEO_ACCESS:
        raise ValueError(f"video_access must be one of {VIDEO_ACCESS}, got {value!r}")


def snapshot_commit(root: str | Path | None) -> str | None:
    """The commit a Hugging Face cache snapshot folder (`.../snapshots/<commit>`) holds, else None."""
    if not root:
        return None
    path = Path(root)
    return path.name if path.parent.name == "snapshots" and _COMMIT.match(path.name) else None


def snapshot_repo(root: str | Path | None) -> str | None:
    """The dataset repo id of a Hugging Face cache snapshot folder (`.../datasets--user--name/snapshots/<commit>`;
    repo ids cannot hold `--`, so the folder name is unambiguous), else None."""
    if snapshot_commit(root) is None:
        return None
    kind, _, rest = Path(root).parent.parent.name.partition("--")  # type: ignore[arg-type]
    parts = rest.split("--")
    return "/".join(parts) if kind == "datasets" and len(parts) == 2 and all(parts) else None


def hub_file(repo_id: str | None, root: str | Path | None, path: str, revision: str | None = None) -> HubFile | None:
    """The Hub file behind `root/path` for a dataset loaded from the Hub, pinned to a commit: the row's revision
    when it is one, else the commit of the snapshot folder it was loaded into. None for a local dataset."""
    commit = revision if revision and _COMMIT.match(revision) else snapshot_commit(root)
    repo = repo_id or snapshot_repo(root)
    if not repo or commit is None:
        return None
    return HubFile(repo, commit, path)


def download_whole(file: HubFile, why: str) -> str:
    """Download `file` whole into the Hugging Face cache (at its commit); returns the local path. Logs one INFO
    line saying why; the bytes count as `download` in the stats."""
    from huggingface_hub import hf_hub_download

    done = registry().downloaded
    if file in done and Path(done[file]).is_file():
        return done[file]
    logger.info("%s: downloading it whole (%s)", file, why)
    try:
        local = hf_hub_download(file.repo_id, file.path, repo_type=file.repo_type, revision=file.commit)
    except Exception as exc:  # huggingface_hub's HTTP and offline errors: one message naming the file
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise RangeFetchError(f"downloading it failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                              file=str(file), status=status) from exc
    stats = stats_registry().file(str(file))
    size = Path(local).stat().st_size
    stats.size, stats.mode = size, "download"
    stats.add("download", size, 1)
    done[file] = local
    return local


def log_summary(level: int = logging.INFO) -> RemoteStats:
    """Log this process's one-line summary of Hub video reads (when it read any); returns the stats."""
    stats = remote_stats()
    if stats.files:
        logger.log(level, "%s", stats.summary())
    return stats
