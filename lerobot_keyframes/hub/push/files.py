"""Which files of a dataset root a push uploads, which it must have, and whether each matches the remote copy."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from huggingface_hub.hf_api import RepoFile

    from ...dataset.layout import DatasetLayout

# Never uploaded: annotation staging, download/tool caches, temp files of atomic writes.
SKIP_PATTERNS = (
    ".lerobot_keyframes/*",
    "staging/*",
    ".cache/*",
    "*/.cache/*",
    ".git/*",
    ".huggingface/*",
    "*__pycache__*",
    "*.tmp",
    "*.tmp-*",  # temp files of our atomic writes (`.file-000.parquet.tmp-<pid>-<id>`)
    "*.partial",
    "*.incomplete",
    "*.lock",
    "*.DS_Store",
)
# The only remote folders a push deletes stale files from; anything else on the repo is left alone.
MANAGED_PREFIXES = ("data/", "meta/", "videos/")
_CHUNK = 8 * 1024 * 1024


def is_skipped(relative_path: str) -> bool:
    """Whether a push leaves out the file at this posix path relative to the root (see `SKIP_PATTERNS`)."""
    return any(fnmatch.fnmatch(relative_path, pattern) for pattern in SKIP_PATTERNS)


def local_files(root: Path) -> dict[str, Path]:
    """relative posix path -> file, for every file under `root` that a push uploads.

    Symlinks are followed only inside the root (or into the HF cache blobs of its repo); a link that leaves
    it, dangles or loops raises `UnsafeLinkError` (see `iter_dataset_files`), so nothing outside is uploaded.

    Args:
        root (`Path`):
            The dataset root.
    """
    from ...dataset.layout import iter_dataset_files

    root = Path(root)
    files = iter_dataset_files(root, skip=lambda rel: is_skipped(rel + "x" if rel.endswith("/") else rel))
    return {path.relative_to(root).as_posix(): path for path in files}


def iter_skipped(root: str | Path) -> Iterable[str]:
    """Files under `root` a push leaves out (for `push --dry_run` style listings and tests)."""
    root = Path(root)
    kept = set(local_files(root))
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = path.relative_to(root).as_posix()
            if rel not in kept:
                yield rel


def referenced_files(layout: DatasetLayout) -> list[str]:
    """Every data and video file that meta/episodes points at, plus the meta files, as relative paths."""
    from ...dataset.episodes import read_episodes_meta
    from ...dataset.layout import INFO_PATH

    meta = read_episodes_meta(layout)
    cols = meta.to_pydict()
    paths = {INFO_PATH} | {layout.relative(p) for p in layout.episodes_paths()}
    for i in range(meta.num_rows):
        paths.add(layout.relative(layout.data_path(cols["data/chunk_index"][i], cols["data/file_index"][i])))
        for key in layout.video_keys:
            paths.add(layout.relative(layout.video_path(key, cols[f"videos/{key}/chunk_index"][i],
                                                        cols[f"videos/{key}/file_index"][i])))
    return sorted(paths)


def _digest(path: Path, h: hashlib._Hash) -> str:
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """The sha256 of a file (how the Hub identifies LFS files)."""
    return _digest(path, hashlib.sha256())


def git_blob_oid_file(path: Path) -> str:
    """The git blob id of a file (how the Hub identifies non-LFS files)."""
    return _digest(path, hashlib.sha1(b"blob %d\0" % path.stat().st_size))


def file_matches_remote(path: Path, remote: RepoFile) -> bool:
    """Whether a local file has the content of a remote `RepoFile` (size, then LFS sha256 or git blob id)."""
    if path.stat().st_size != remote.size:
        return False
    if getattr(remote, "lfs", None) is not None:
        return sha256_file(path) == remote.lfs.sha256
    return git_blob_oid_file(path) == remote.blob_id


def bytes_match_remote(content: bytes, remote: RepoFile | None) -> bool:
    """`file_matches_remote` for content held in memory (the card of a cache-snapshot root)."""
    if remote is None or len(content) != remote.size:
        return False
    if getattr(remote, "lfs", None) is not None:
        return hashlib.sha256(content).hexdigest() == remote.lfs.sha256
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest() == remote.blob_id
