"""Moved to `lerobot_keyframes.cli.flags` (the flag generator) and `lerobot_keyframes.cli.values` (values).

Kept only while `hub/jobs.py` still imports `add_dataclass_flags` / `dataclass_from_flags` from here.
"""

from __future__ import annotations

from .cli.flags import add_dataclass_flags, dataclass_from_flags

__all__ = ["add_dataclass_flags", "dataclass_from_flags"]
