"""Reading JSON and YAML that someone else wrote, within bounds: size, nesting depth, expanded size.

Config files, flag values, reference files and run records are text we did not write. A 50 kB `[[[[...` makes
`json` and PyYAML raise RecursionError; a YAML alias bomb (nine aliases of nine aliases of ...) is a few
hundred bytes that expand to a billion values as soon as anything walks them (`json.dumps` in a staging key).
`load_json` and `load_yaml` refuse both with a `StructuredInputError` (a ValueError) naming where the text
came from; `InputBoundsError`, its subclass, marks text that is well-formed but too big or too deep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_BYTES = 1 << 20  # a config file or a flag value
MAX_DEPTH = 64  # nesting of lists and mappings
MAX_NODES = 100_000  # values after aliases are expanded (YAML)


class StructuredInputError(ValueError):
    """JSON or YAML text that cannot be read; the message names where it came from."""


class InputBoundsError(StructuredInputError):
    """Well-formed text that is larger, deeper or (through YAML aliases) bigger once expanded than allowed."""


def check_bounds(value: Any, where: str, *, max_depth: int | None = MAX_DEPTH, max_nodes: int | None = MAX_NODES) -> None:
    """Walk `value` as a consumer would (a value reached through several aliases counts each time) and raise
    `InputBoundsError` past `max_depth` levels or `max_nodes` values. Stops as soon as a bound is crossed, so
    an alias bomb or a self-referencing structure costs at most `max_nodes` steps."""
    if max_depth is None and max_nodes is None:
        return
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if max_nodes is not None and nodes > max_nodes:
            raise InputBoundsError(f"{where}: expands to more than {max_nodes} values (YAML aliases?); "
                                   "write the values out or shorten them")
        if isinstance(item, dict):
            children: Any = [v for kv in item.items() for v in kv]
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if children and max_depth is not None and depth + 1 > max_depth:
            raise InputBoundsError(f"{where}: nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)


def _check_size(text: str | bytes, where: str, max_bytes: int | None) -> None:
    if max_bytes is not None and len(text) > max_bytes:
        raise InputBoundsError(f"{where}: {len(text)} bytes, more than the {max_bytes} bytes allowed here")


def load_json(text: str | bytes, where: str, *, max_bytes: int | None = MAX_BYTES, max_depth: int | None = MAX_DEPTH,
              max_nodes: int | None = MAX_NODES) -> Any:
    """`json.loads(text)` within the bounds; `StructuredInputError` (naming `where`) for anything else."""
    _check_size(text, where, max_bytes)
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputBoundsError(f"{where}: nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise StructuredInputError(f"{where}: not valid JSON ({exc})") from None
    check_bounds(value, where, max_depth=max_depth, max_nodes=max_nodes)
    return value


def load_yaml(text: str, where: str, *, max_bytes: int | None = MAX_BYTES, max_depth: int | None = MAX_DEPTH,
              max_nodes: int | None = MAX_NODES) -> Any:
    """`yaml.safe_load(text)` within the bounds (aliases count as often as they are used). ImportError
    without PyYAML, `StructuredInputError` (naming `where`) for text it cannot read."""
    import yaml

    _check_size(text, where, max_bytes)
    try:
        value = yaml.safe_load(text)
    except RecursionError:
        raise InputBoundsError(f"{where}: nested too deeply to read") from None
    except yaml.YAMLError as exc:
        raise StructuredInputError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    check_bounds(value, where, max_depth=max_depth, max_nodes=max_nodes)
    return value


def read_json_file(path: str | Path, *, max_bytes: int | None = MAX_BYTES, max_depth: int | None = MAX_DEPTH,
                   max_nodes: int | None = MAX_NODES) -> Any:
    """A JSON file read within the bounds (its size checked before reading); errors name the file."""
    p = Path(path)
    if max_bytes is not None and p.stat().st_size > max_bytes:
        raise InputBoundsError(f"{p}: {p.stat().st_size} bytes, more than the {max_bytes} bytes allowed here")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise StructuredInputError(f"{p}: not valid JSON (not UTF-8 text: {exc})") from None
    return load_json(text, str(p), max_bytes=None, max_depth=max_depth, max_nodes=max_nodes)
