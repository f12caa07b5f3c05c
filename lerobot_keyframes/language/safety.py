"""Refuse writes that would go through a symlink or into a Hugging Face cache (shared blobs of other datasets)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..dataset.errors import DatasetFormatError


class UnsafeWriteError(DatasetFormatError):
    """Writing would go through a symlink or into a Hugging Face cache; write to a new root instead."""


def is_hf_cache_path(path: Path) -> bool:
    """True for paths inside a Hugging Face hub cache (`.../datasets--owner--name/snapshots/<rev>/...`)."""
    parts = path.parts
    return any(p.startswith(("datasets--", "models--", "spaces--")) and i + 1 < len(parts)
               and parts[i + 1] in ("snapshots", "blobs") for i, p in enumerate(parts))


def check_in_place_safe(root: Path, files: Iterable[Path]) -> None:
    """Refuse in-place writes through symlinks (a cache snapshot points into shared blobs) or into a cache."""
    if is_hf_cache_path(root) or is_hf_cache_path(root.resolve()):
        raise UnsafeWriteError(
            f"{root} is inside a Hugging Face cache; annotating it in place would corrupt the cache. "
            "Write to a new root instead (out=... / --out DIR)."
        )
    for path in files:
        probe = path
        while True:
            if probe.is_symlink():
                raise UnsafeWriteError(
                    f"{probe} is a symlink (-> {os.readlink(probe)}); in-place writes never go through symlinks "
                    "(a Hugging Face cache snapshot links into shared blobs). Write to a new root instead "
                    "(out=... / --out DIR)."
                )
            if probe == root or probe.parent == probe:
                break
            probe = probe.parent
