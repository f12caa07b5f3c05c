"""Flag values in lerobot-annotate's (draccus's) grammar: booleans, integer lists with ranges, lists, mappings.

Each parser takes the text a user typed (or a value a config file already parsed) and raises
`argparse.ArgumentTypeError` with the value in the message, so argparse reports it as one line.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
NULL = ("none", "null", "~")


def parse_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parse_int_list(value: str) -> tuple[int, ...]:
    """`0,3,5-8` or `[0, 3]` -> (0, 3, 5, 6, 7, 8)."""
    out: list[int] = []
    for part in _list_items(value):
        text = str(part).strip()
        lo, dash, hi = text.partition("-")
        try:
            if dash and lo:
                first, last = int(lo), int(hi)
                if last < first:
                    raise ValueError
                out.extend(range(first, last + 1))
            else:
                out.append(int(text))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected integers or ranges like 0,3,5-8, got {value!r}") from None
    return tuple(out)


def _list_items(value: str | Sequence[Any]) -> list[Any]:
    """Items of `a,b`, `[a, b]` (JSON/YAML list) or an already parsed list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = _yaml(text)
        if isinstance(parsed, list):
            return parsed
        raise argparse.ArgumentTypeError(f"expected a list, got {value!r}")
    return [v.strip() for v in text.split(",") if v.strip()]


def _yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError:  # PyYAML is optional: JSON always works
        raise argparse.ArgumentTypeError(f"cannot parse {text!r} as JSON (install PyYAML for YAML values)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"cannot parse {text!r}: {exc}") from None


def parse_mapping(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """JSON (or YAML flow) object -> dict: `'{"enable_thinking": false}'`."""
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = _yaml(value)
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"key\": 1}}', got {value!r}")
    return parsed


def csv_list(value: str) -> list[str]:
    """`a,b` or `[a, b]` -> [a, b] (plain strings)."""
    text = value.strip()
    if text.startswith("["):
        return [str(v) for v in json.loads(text)]
    return [v.strip() for v in text.split(",") if v.strip()]


def episode_list(value: str) -> list[int]:
    """`0,3,5-8` -> [0, 3, 5, 6, 7, 8] (also `[0, 3]`)."""
    return list(parse_int_list(value))
