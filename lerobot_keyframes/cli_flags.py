"""`--group.field=value` flags generated from frozen config dataclasses (lerobot-annotate's flag style).

Every field of a config dataclass becomes a flag, so the CLI never drifts from the library: booleans take
`true/false`, tuples take comma-separated values, dicts take JSON. A field's help is the comment on its line
in the dataclass (`name: type = default  # what it does`), so `--help` says what the code says.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import re
import types
import typing
from pathlib import Path
from typing import Any


def parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _optional_inner(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _converter(tp: Any):
    tp = _optional_inner(tp)
    origin = typing.get_origin(tp)
    if tp is bool:
        return parse_bool
    if tp in (int, float, str):
        return tp
    if tp is Path:
        return Path
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp) or (str,)
        conv = _converter(inner)
        return lambda s: tuple(conv(v.strip()) for v in s.split(",") if v.strip())
    if origin is dict or tp is dict:
        return json.loads
    return str


_FIELD_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")


@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """{field: the comment on its line in the class body} (empty when the source is not available)."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    for line in lines:
        m = _FIELD_COMMENT.match(line)
        if m and m.group(1) not in out:
            out[m.group(1)] = m.group(2).rstrip(".").replace("%", "%%")  # argparse formats help with %
    return out


def add_dataclass_flags(parser: argparse.ArgumentParser, prefix: str, cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """Add `--{prefix}.{field}` for every field of `cls` (defaults stay in the dataclass)."""
    hints = typing.get_type_hints(cls)
    title = f"--{prefix}.*" if prefix else "run"
    group = parser.add_argument_group(title, (cls.__doc__ or "").strip().splitlines()[0])
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or dataclasses.is_dataclass(hints[f.name]):
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        )
        name = f"{prefix}.{f.name}" if prefix else f.name
        group.add_argument(
            f"--{name}", dest=name, type=_converter(hints[f.name]),
            default=argparse.SUPPRESS, metavar=type(default).__name__.upper() if default is not None else "VALUE",
            help=(f"{comments[f.name]} (default: {default!r})" if f.name in comments else f"default: {default!r}"),
        )


def dataclass_from_flags(args: argparse.Namespace, prefix: str, cls: type, **extra: Any) -> Any:
    """Build `cls` from the `--{prefix}.*` flags that were given (others keep their defaults)."""
    def name(field: str) -> str:
        return f"{prefix}.{field}" if prefix else field

    values = {f.name: getattr(args, name(f.name)) for f in dataclasses.fields(cls) if hasattr(args, name(f.name))}
    return cls(**{**values, **extra})
