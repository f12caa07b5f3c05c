"""Lazy public names for a package's `__init__`: `import lerobot_keyframes` stays cheap (no torch, no datasets).

Usage, in a package `__init__.py`::

    from typing import TYPE_CHECKING
    from ..utils.lazy import lazy_exports

    _EXPORTS = {".transform": "KeyframeTransform extract_keyframes", ...}  # module (relative) -> its names
    __getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
    if TYPE_CHECKING:  # what IDEs and type checkers see
        from .transform import KeyframeTransform
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str], namespace: Mapping[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """Module `__getattr__`, `__dir__` and `__all__` for `{module: "name name ..."}`, imported on first access."""
    where = {name: module for module, names in exports.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        if isinstance(namespace, dict):
            namespace[name] = value  # resolved once: the next access is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__, sorted(where)
