"""Reading JSON answers: strict parse for schema-enforced output, tolerant extraction as a fallback."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .types import Failure, FailureKind, FinishReason

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_DECODER = json.JSONDecoder()


def _candidates(text: str) -> Iterator[Any]:
    stripped = text.strip()
    try:
        yield json.loads(stripped)
    except ValueError:
        pass
    for match in _FENCE.finditer(text):
        try:
            yield json.loads(match.group(1).strip())
        except ValueError:
            pass
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                value, _ = _DECODER.raw_decode(text, i)
            except ValueError:
                continue
            yield value


def extract_json(text: str, schema: Mapping[str, Any] | None = None) -> Any:
    """Find a JSON value in free text (whole text, ```json fences, then the first decodable {...}/[...]).

    With a schema, the first candidate valid against it wins; without, the first that parses.
    Raises ValueError when nothing qualifies. Only for servers that cannot enforce a schema.
    """
    first_error: str | None = None
    for value in _candidates(text):
        if schema is None:
            return value
        problem = validation_error(value, schema)
        if problem is None:
            return value
        first_error = first_error or problem
    raise ValueError(first_error or "no JSON value found in the text")


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    import jsonschema  # a core dependency: every answer is checked, whether or not the backend enforced it

    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema)(schema)


def validation_error(value: Any, schema: Mapping[str, Any]) -> str | None:
    """The first schema violation as a message (quoting at most `QUOTE_LIMIT` characters of the answer), or None."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    err = errors[0]
    where = bounded("/".join(str(p) for p in err.absolute_path) or "$", 100)
    return f"at {where}: {bounded(err.message)}"


QUOTE_LIMIT = 300  # characters of a model answer (or of a message quoting one) any error message carries


def bounded(text: Any, limit: int = QUOTE_LIMIT) -> str:
    """At most `limit` characters of `text`, saying how long it was: a 2 MB answer never floods a log."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text)} chars]"


def parse_answer(
    text: str, schema: Mapping[str, Any], *, enforced: bool, finish_reason: FinishReason
) -> tuple[Any, Failure | None]:
    """Turn an answer into (value, None) or (None, Failure)."""
    value: Any = None
    if enforced:
        try:
            value = json.loads(text)
        except ValueError as exc:
            try:  # an enforcing backend may still wrap the answer (a thinking preamble, a fence)
                value = extract_json(text, schema)
            except ValueError:
                kind = FailureKind.TRUNCATED if finish_reason == "length" else FailureKind.INVALID_JSON
                return None, Failure(kind, f"answer is not JSON ({bounded(exc)}); finish_reason={finish_reason}")
    else:
        try:
            value = extract_json(text, schema)
        except ValueError as exc:
            kind = FailureKind.TRUNCATED if finish_reason == "length" else FailureKind.INVALID_JSON
            if kind is FailureKind.INVALID_JSON and "at " in str(exc):
                kind = FailureKind.SCHEMA_MISMATCH
            return None, Failure(kind, f"no schema-valid JSON in the answer: {bounded(exc)}")
    problem = validation_error(value, schema)
    if problem is not None:
        kind = FailureKind.TRUNCATED if finish_reason == "length" else FailureKind.SCHEMA_MISMATCH
        return None, Failure(kind, f"JSON does not match the schema {problem}")
    return value, None
