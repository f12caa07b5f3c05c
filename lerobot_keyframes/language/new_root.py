"""Write an annotated copy as a NEW dataset root: built under a hidden temp name beside it, then renamed in.

Meta and data are real copies (never links into the source or a cache), videos are hard-linked where the file
system allows it, else copied. A crash leaves the hidden temp folder, never a half-written `out`.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Set
from pathlib import Path
from typing import TypeVar

from ..dataset.layout import check_output_separate, iter_dataset_files
from ..utils.files import replace_file

logger = logging.getLogger(__name__)

_SKIP_TOP_LEVEL = {".git", ".cache", ".lerobot_keyframes"}
T = TypeVar("T")


def write_new_root(source: Path, out: Path, fill: Callable[[Path], T], *, skip: Set[Path], overwrite: bool = False,
                   link_videos: bool = True) -> T:
    """Copy `source` (less the files in `skip`) to a temp root, let `fill(temp_root)` write the rest, rename to `out`.

    Returns what `fill` returns. An existing `out` is replaced only with `overwrite`, and only once the new root
    is complete.
    """
    check_output_separate(source, out, what="output")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists (pass overwrite=True / --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        copied, linked = copy_tree(source, staging, skip=skip, link_videos=link_videos)
        result = fill(staging)
        if out.exists():
            trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, trash)
            replace_file(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            replace_file(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("copied %d file(s), hard-linked %d video file(s) into %s", copied, linked, out)  # not the temp name
    return result


def copy_tree(src: Path, dst: Path, *, skip: Set[Path], link_videos: bool) -> tuple[int, int]:
    """Copy a dataset root: regular copies of meta and data (never links), videos hard-linked when possible.
    Returns (files copied, videos hard-linked)."""
    dst.mkdir(parents=True)
    linked = copied = 0
    # only files of the root itself (links into the HF blob store of its repo included), never a link outside
    for path in iter_dataset_files(src, skip=lambda rel: rel.rstrip("/") in _SKIP_TOP_LEVEL):
        rel_dir = path.parent.relative_to(src)
        (dst / rel_dir).mkdir(parents=True, exist_ok=True)
        if path in skip or ".tmp-" in path.name:
            continue
        target = dst / rel_dir / path.name
        if link_videos and rel_dir.parts[:1] == ("videos",) and _hard_link(path, target):
            linked += 1
            continue
        shutil.copyfile(path, target)  # follows symlinks: the copy is a real file
        copied += 1
    return copied, linked


def _hard_link(path: Path, target: Path) -> bool:
    try:
        os.link(os.path.realpath(path), target)
    except OSError:
        return False
    return True
