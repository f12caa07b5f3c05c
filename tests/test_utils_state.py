"""PicklesAsConfig: objects travel as their configuration; the runtime is per process, never pickled."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import threading
from dataclasses import dataclass

from lerobot_keyframes.utils.state import PicklesAsConfig


@dataclass(frozen=True)
class _Job(PicklesAsConfig):
    name: str
    size: int = 1

    def make_runtime(self) -> dict:
        return {"pid": os.getpid(), "lock": threading.Lock()}  # a lock cannot be pickled


class _Plain(PicklesAsConfig):
    CONFIG_FIELDS = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path
        self.scratch = "not configuration"

    def make_runtime(self) -> list:
        return []


def _child_runtime_pid(job: _Job, queue: mp.Queue) -> None:
    queue.put((job.runtime()["pid"], os.getpid()))


def test_a_frozen_dataclass_pickles_as_its_fields_only() -> None:
    job = _Job("a", 3)
    first = job.runtime()
    assert job.runtime() is first and first["pid"] == os.getpid()
    clone = pickle.loads(pickle.dumps(job))  # would fail if the lock travelled
    assert clone == job and clone.__getstate__() == {"name": "a", "size": 3}
    assert "_runtime_of_pid" not in vars(clone) and clone.runtime() is not first


def test_a_plain_class_pickles_its_config_fields() -> None:
    obj = _Plain("/data")
    obj.runtime().append(1)
    clone = pickle.loads(pickle.dumps(obj))
    assert clone.path == "/data" and not hasattr(clone, "scratch") and clone.runtime() == []


def test_a_runtime_inherited_through_fork_is_replaced() -> None:
    job = _Job("forked")
    parent = job.runtime()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_runtime_pid, args=(job, queue))
    proc.start()
    runtime_pid, child_pid = queue.get(timeout=60)
    proc.join(60)
    assert runtime_pid == child_pid != parent["pid"]
