"""Objects that pickle as their configuration, with a per-process runtime rebuilt where they are used.

Two ways to come back: `PicklesAsConfig` restores the configuration and rebuilds its runtime on first use
(frame providers, transforms); `RebuiltOnUnpickle` calls `__init__` again with the arguments that built the
object (VLM backends, the batching scheduler), for classes whose constructor is where the runtime is made.

A frame provider or a `datasets.map` transform is shipped to worker processes (`num_proc`, Ray, a process
pool) and hashed for a stable `datasets` fingerprint. Both must travel as what they were asked to do
(their configuration), never as what they hold open (decoders, thread pools, caches, locks): those are
rebuilt lazily in the process that uses the object, after unpickling or after a fork that inherited them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any


class PicklesAsConfig:
    """Mixin: pickles as `config_state()` only; `runtime()` is this process's state, made by `make_runtime()`.

    A dataclass's state is its fields; other classes list their configuration attributes in `CONFIG_FIELDS`.
    Works for frozen dataclasses (state is restored with `object.__setattr__`).
    """

    CONFIG_FIELDS: tuple[str, ...] = ()

    def config_state(self) -> dict[str, Any]:
        names = [f.name for f in dataclasses.fields(self)] if dataclasses.is_dataclass(self) else self.CONFIG_FIELDS
        return {name: getattr(self, name) for name in names}

    def __getstate__(self) -> dict[str, Any]:
        return self.config_state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def make_runtime(self) -> Any:
        raise NotImplementedError

    def runtime(self) -> Any:
        """This process's runtime, made on first use here (a runtime inherited through fork is replaced)."""
        held = self.__dict__.get("_runtime_of_pid")
        if held is None or held[0] != os.getpid():
            held = (os.getpid(), self.make_runtime())
            object.__setattr__(self, "_runtime_of_pid", held)
        return held[1]


class RebuiltOnUnpickle(PicklesAsConfig):
    """Mixin: pickles as the `__init__` keyword arguments of `_init_kwargs()`; unpickling calls `__init__` again.

    Engines, server clients, locks and threads cannot cross a process boundary (`datasets.map(num_proc=...)`
    with spawn, Ray actors): the copy rebuilds its own, lazily, from the same configuration.
    """

    def _init_kwargs(self) -> dict[str, Any]:
        """The `__init__` keyword arguments a copy is rebuilt from."""
        raise NotImplementedError

    def config_state(self) -> dict[str, Any]:
        return self._init_kwargs()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]
