"""Errors raised while reading a LeRobot dataset: each names the file and, when known, the episode."""

from __future__ import annotations


class DatasetFormatError(ValueError):
    """The dataset on disk does not follow the LeRobot v3 layout; the message names file and episode."""


class UnsupportedVersionError(DatasetFormatError):
    """The dataset's `codebase_version` is not v3.x."""


class UnsafePathError(DatasetFormatError):
    """A path built from info.json templates or indices would leave the dataset root."""


class OutputOverlapError(DatasetFormatError):
    """An output location is, contains or lies inside a source dataset: writing it could destroy the source."""


class UnsafeLinkError(UnsafePathError):
    """A symlink inside a dataset root resolves outside it (or loops): it is never copied nor uploaded."""
