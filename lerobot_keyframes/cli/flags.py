"""`--group.field=value` flags generated from frozen config dataclasses (lerobot-annotate's flag style).

Every field of a config dataclass becomes a flag, so the CLI never drifts from the library. The grammar is
lerobot-annotate's (draccus): `--x=value`, booleans as `--x`, `--x=true` or `--x=false`, tuples as `a,b` or
`[a, b]` (integer tuples also take ranges: `0-2,5`), dicts as JSON (or YAML), `null` for an optional value,
and `--config_path=FILE.yaml|json` for a whole config file (flags on the command line win over the file).
A field's help is the comment on its line in the dataclass (`name: type = default  # what it does`), so
`--help` says what the code says. A class may declare `FLAG_ALIASES = {"alias": "field"}`: lerobot-annotate's
name for the same knob, accepted and shown next to ours. The values' grammar is in `values.py`, config files
in `config_file.py`, the one-line errors in `errors.py`.

draccus (lerobot's own config library) is not used: it is not a dependency here, and this generator gives the
same command lines (same flag names, values and config files) while keeping `--help` texts, readable errors and
a nearest-flag suggestion for typos.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .values import FALSE, NULL, TRUE, _list_items, parse_bool, parse_int_list, parse_mapping


def _optional_inner(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _named(fn: Any, name: str) -> Any:
    fn.__name__ = name  # argparse names the converter in "invalid <name> value" errors
    return fn


def _converter(tp: Any) -> Any:
    inner, optional = _optional_inner(tp)
    conv = _base_converter(inner)
    if not optional:
        return conv

    def maybe_none(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in NULL):
            return None
        return conv(value)

    maybe_none.accepts_none = True  # type: ignore[attr-defined]
    return _named(maybe_none, getattr(conv, "__name__", "value"))


def _base_converter(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        return parse_bool
    if tp in (int, float, str):
        return tp
    if tp is Path:
        return Path
    if typing.get_origin(tp) is typing.Literal:
        return str
    if origin in (tuple, list):
        (inner, *_rest) = typing.get_args(tp) or (str,)
        if inner is int:
            return _named(parse_int_list, "integer list")
        conv = _base_converter(inner)
        return _named(lambda s: tuple(conv(v if not isinstance(v, str) else v.strip()) for v in _list_items(s)),
                      "list")
    if origin is dict or tp is dict:
        return _named(parse_mapping, "JSON object")
    return str


def _metavar(tp: Any) -> str:
    inner, _ = _optional_inner(tp)
    origin = typing.get_origin(inner)
    if inner is bool:
        return "BOOL"
    if origin is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(inner))) + "}"
    if origin in (tuple, list):
        (item, *_rest) = typing.get_args(inner) or (str,)
        return "INT,..." if item is int else "A,B,..."
    if origin is dict or inner is dict:
        return "JSON"
    if inner is Path:
        return "PATH"
    if inner in (int, float, str):
        return inner.__name__.upper()
    return "VALUE"


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


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_bool_flag(parser: Any, *names: str, help: str, dest: str | None = None, default: Any = False,
                  hidden: Sequence[str] = ()) -> None:
    """`--x`, `--x=true`, `--x=false` (and `--x true`): one boolean grammar for every command."""
    action = parser.add_argument(*names, dest=dest, type=parse_bool, nargs="?", const=True, default=default,
                                 metavar="BOOL", help=help)
    for alias in hidden:
        parser.add_argument(alias, dest=action.dest, type=parse_bool, nargs="?", const=True, metavar="BOOL",
                            default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_flag(parser: Any, *names: str, hidden: Sequence[str] = (), **kwargs: Any) -> argparse.Action:
    """`parser.add_argument`, plus hidden old spellings (e.g. `--image-camera` for `--image_camera`)."""
    action = parser.add_argument(*names, **kwargs)
    for alias in hidden:
        extra = {k: v for k, v in kwargs.items() if k not in ("help", "default", "required", "dest")}
        parser.add_argument(alias, dest=action.dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **extra)
    return action


def add_dataclass_flags(parser: argparse.ArgumentParser, prefix: str, cls: type, *, skip: tuple[str, ...] = (),
                        nested: bool = True, help: Mapping[str, str] | None = None) -> None:
    """Add `--{prefix}.{field}` for every field of `cls` (defaults stay in the dataclass).

    Nested config dataclasses get their own `--{prefix}.{field}.*` group (skip them with `nested=False`).
    `help` gives the text of fields that have no comment in the class.
    """
    hints = typing.get_type_hints(cls)
    title = f"--{prefix}.*" if prefix else "run"
    group = parser.add_argument_group(title, (cls.__doc__ or "").strip().splitlines()[0])
    comments = field_comments(cls)
    aliases: dict[str, list[str]] = {}
    for alias, target in dict(getattr(cls, "FLAG_ALIASES", {}) or {}).items():
        aliases.setdefault(target, []).append(alias)
    later: list[tuple[str, type]] = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            if nested:
                later.append((f"{prefix}.{f.name}" if prefix else f.name, tp))
            continue
        default = _default(f)
        name = f"{prefix}.{f.name}" if prefix else f.name
        options = [f"--{name}"] + [f"--{prefix}.{a}" if prefix else f"--{a}" for a in aliases.get(f.name, ())]
        text = comments.get(f.name) or (help or {}).get(f.name)
        shown = "unset" if default is None else (str(default).lower() if isinstance(default, bool) else repr(default))
        help_text = f"{text} (default: {shown})" if text else f"default: {shown}"
        kwargs: dict[str, Any] = {"dest": name, "type": _converter(tp), "default": argparse.SUPPRESS,
                                  "metavar": _metavar(tp), "help": help_text}
        if _optional_inner(tp)[0] is bool:
            kwargs.update(nargs="?", const=True)
        group.add_argument(*options, **kwargs)
    for sub_prefix, sub_cls in later:
        add_dataclass_flags(parser, sub_prefix, sub_cls)


def dataclass_from_flags(args: argparse.Namespace, prefix: str, cls: type, **extra: Any) -> Any:
    """Build `cls` from the `--{prefix}.*` flags that were given (others keep their defaults)."""
    def name(field: str) -> str:
        return f"{prefix}.{field}" if prefix else field

    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in extra:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            sub = name(f.name) + "."
            if any(k.startswith(sub) for k in vars(args)):
                values[f.name] = dataclass_from_flags(args, name(f.name), hints[f.name])
        elif hasattr(args, name(f.name)):
            values[f.name] = getattr(args, name(f.name))
    return cls(**{**values, **extra})


def option_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


def normalize_bools(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`--x` -> `--x=true`, `--x false` -> `--x=false` for boolean flags, so a bare boolean flag never takes
    the next positional argument as its value."""
    actions = option_actions(parser)
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            out.extend(argv[i:])
            break
        action = actions.get(arg)
        if action is not None and action.metavar == "BOOL" and action.nargs == "?":
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if nxt is not None and nxt.strip().lower() in TRUE + FALSE:
                out.append(f"{arg}={nxt}")
                i += 2
                continue
            out.append(f"{arg}=true")
        else:
            out.append(arg)
        i += 1
    return out
