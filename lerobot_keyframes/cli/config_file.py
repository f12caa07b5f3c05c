"""`--config_path=FILE.yaml|json` (draccus-style): a file of settings nested like the flags, as defaults.

The file's keys are the flags' names (`{vlm: {model_id: ...}}` is `--vlm.model_id`), lerobot-annotate's aliases
included; a key no flag has is an error naming the nearest one. Flags on the command line win over the file.
"""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..utils.structured import MAX_BYTES, load_json, load_yaml
from .flags import option_actions


def add_config_path(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config_path", type=Path, default=argparse.SUPPRESS, metavar="FILE",
                   help="YAML or JSON file of settings, nested like the flags ({vlm: {model_id: ...}}); "
                   "flags on the command line win over it (lerobot-annotate's --config_path)")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON config file (nested like the dataclasses: `{"vlm": {"model_id": ...}}`), read within
    bounds (1 MiB, 64 levels, YAML aliases counted as expanded: `utils.structured`)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"--config_path={path}: no such file")
    where = f"--config_path={path}"
    if p.stat().st_size > MAX_BYTES:
        raise ValueError(f"{where}: {p.stat().st_size} bytes, more than the {MAX_BYTES} bytes a config file may have")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where}: not UTF-8 text ({exc})") from None
    if p.suffix.lower() == ".json":
        data = load_json(text, where)
    else:
        try:
            data = load_yaml(text, where)
        except ImportError:
            raise ValueError(f"{where}: reading YAML needs PyYAML (pip install pyyaml), "
                             "or write the config as .json") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of settings at the top level")
    return data


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and not _is_mapping_field(name):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


_MAPPING_FIELDS: set[str] = set()


def _is_mapping_field(name: str) -> bool:
    return name in _MAPPING_FIELDS


def apply_config_file(parser: argparse.ArgumentParser, path: str | Path) -> None:
    """Make the file's settings the parser's defaults (command-line flags still win)."""
    by_dest: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.option_strings and action.dest not in by_dest:
            by_dest[action.dest] = action
    for opt, action in option_actions(parser).items():  # aliases: lerobot names map to our dest
        by_dest.setdefault(opt.lstrip("-"), action)
    _MAPPING_FIELDS.clear()
    _MAPPING_FIELDS.update(d for d, a in by_dest.items() if a.metavar == "JSON")
    settings = flatten(load_config_file(path))
    defaults: dict[str, Any] = {}
    for key, value in settings.items():
        action = by_dest.get(key)
        if action is None or key == "config_path":
            close = difflib.get_close_matches(key, list(by_dest), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"--config_path={path}: unknown setting {key!r}{hint}")
        if value is None and not getattr(action.type, "accepts_none", False):
            continue  # lerobot writes null for "the library's default": keep ours
        try:
            if value is None or action.type is None:
                converted = value
            elif isinstance(value, (dict, list, tuple, bool, int, float)) and action.metavar in ("JSON", "BOOL"):
                converted = action.type(value)
            elif isinstance(value, (list, tuple)):
                converted = action.type(json.dumps(list(value)))
            else:
                converted = action.type(value if isinstance(value, str) else json.dumps(value))
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise ValueError(f"--config_path={path}: {key}: {exc}") from None
        defaults[action.dest] = converted
    parser.set_defaults(**defaults)


def config_path_in(argv: Sequence[str]) -> str | None:
    """The `--config_path` value of a command's arguments (before `--`), if given."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--config_path="):
            return arg.split("=", 1)[1]
        if arg == "--config_path" and i + 1 < len(argv):
            return argv[i + 1]
    return None
