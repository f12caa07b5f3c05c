"""The after-fork torch guard: a forked worker (datasets `num_proc`, a process pool) runs torch single-threaded.

OpenMP thread pools do not survive fork: a child forked after the parent ran parallel torch ops hangs in its
first parallel kernel (seen with `datasets.map(num_proc=2)`). Like torch's DataLoader workers, a forked child
switches torch to one intra-op thread before its first torch work; one thread per worker is also the right share
of the cores when there are several workers.
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger(__name__)

_forked_after_torch = False
_fixed = False


def _after_fork_in_child() -> None:
    global _forked_after_torch, _fixed
    _forked_after_torch = "torch" in sys.modules
    _fixed = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def torch_fork_guard() -> None:
    """Call before torch work in code that may run in a forked child; cheap and idempotent."""
    global _fixed
    if _forked_after_torch and not _fixed:
        torch = sys.modules.get("torch")
        if torch is not None and torch.get_num_threads() != 1:
            logger.debug("forked process: torch.set_num_threads(1) (OpenMP pools do not survive fork)")
            torch.set_num_threads(1)
        _fixed = True
