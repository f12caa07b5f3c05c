"""Flag values in lerobot-annotate's (draccus's) grammar: booleans, integer lists with ranges, lists, mappings.

Each parser takes the text a user typed (or a value a config file already parsed) and raises
`argparse.ArgumentTypeError` with the value in the message, so argparse reports it as one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from ..utils.structured import InputBoundsError, StructuredInputError, load_json, load_yaml

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
NULL = ("none", "null", "~")
MAX_LISTED = 1_000_000  # integers one list flag may expand to (`0-999999999` would allocate ~36 GB)


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
    """`0,3,5-8` or `[0, 3]` -> (0, 3, 5, 6, 7, 8); at most `MAX_LISTED` integers, counted before expanding."""
    spans: list[tuple[int, int]] = []
    for part in _list_items(value):
        text = str(part).strip()
        lo, dash, hi = text.partition("-")
        try:
            if dash and lo:
                first, last = int(lo), int(hi)
                if last < first:
                    raise ValueError
            else:
                first = last = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected integers or ranges like 0,3,5-8, got {_short(value)}") from None
        spans.append((first, last))
    count = sum(last - first + 1 for first, last in spans)
    if count > MAX_LISTED:
        raise argparse.ArgumentTypeError(
            f"{_short(value)} lists {count} integers, more than the {MAX_LISTED} allowed; name the episodes "
            "the dataset has (or leave the flag out for all of them)")
    return tuple(i for first, last in spans for i in range(first, last + 1))


def _short(value: Any) -> str:
    """A value for an error line: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _load(text: str) -> Any:
    """A flag value as JSON, else as YAML (flow style), within the size, depth and alias bounds."""
    where = "the value"  # argparse puts the flag's name first
    try:
        return load_json(text, where)
    except InputBoundsError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{where}: ")) from None
    except StructuredInputError:
        pass
    try:
        return load_yaml(text, where)
    except ImportError:  # PyYAML is optional: JSON always works
        raise argparse.ArgumentTypeError(
            f"cannot parse {_short(text)} as JSON (install PyYAML for YAML values)") from None
    except InputBoundsError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{where}: ")) from None
    except StructuredInputError as exc:
        raise argparse.ArgumentTypeError(f"cannot parse {_short(text)}: {str(exc).removeprefix(f'{where}: ')}") from None


def _list_items(value: str | Sequence[Any]) -> list[Any]:
    """Items of `a,b`, `[a, b]` (JSON/YAML list) or an already parsed list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    text = value.strip()
    if text.startswith("["):
        parsed = _load(text)
        if isinstance(parsed, list):
            return parsed
        raise argparse.ArgumentTypeError(f"expected a list, got {_short(value)}")
    return [v.strip() for v in text.split(",") if v.strip()]


def parse_mapping(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """JSON (or YAML flow) object -> dict: `'{"enable_thinking": false}'`."""
    if isinstance(value, Mapping):
        return dict(value)
    parsed = _load(value)
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"key\": 1}}', got {_short(value)}")
    return parsed


def csv_list(value: str) -> list[str]:
    """`a,b` or `[a, b]` -> [a, b] (plain strings)."""
    return [str(v) for v in _list_items(value)]


def episode_list(value: str) -> list[int]:
    """`0,3,5-8` -> [0, 3, 5, 6, 7, 8] (also `[0, 3]`); an empty list selects nothing and is refused."""
    episodes = list(parse_int_list(value))
    if not episodes:
        raise argparse.ArgumentTypeError(f"{_short(value)} selects no episode; leave the flag out for all of them")
    return episodes
