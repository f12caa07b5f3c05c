"""JSON schemas that grammar-constrained decoding can always finish, and their worst-case length.

A schema with an unbounded string, number or array lets a constrained decoder run until the token limit
(greedy decoding of a weak model happily emits digits or spaces forever). ``make_xgrammar_safe`` bounds
every leaf so that any path through the grammar ends, and ``estimate_max_tokens`` sizes
``max_new_tokens`` from the schema's worst case (see ../shared/ENVIRONMENT.md, xgrammar facts).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from typing import Any

# Printable ASCII without '"' and '\\': no escapes, no control characters, no surrogates.
PRINTABLE_CLASS = "[ -!#-\\[\\]-~]"


_PRINTABLE_RE = re.compile(r"^\^" + re.escape(PRINTABLE_CLASS) + r"\{(\d+),(\d+)\}\$$")
# One repetition of more than ~100 fails to compile in vLLM 0.32's xgrammar (the request ends empty with
# finish_reason "error": a `per_rule_fsm_hashes` check), so the grammar vLLM gets writes long printable
# strings as a run of chunks of at most 64 (the same strings). Only for grammars: Python's `re` would
# backtrack through the chunks for ages on a long invalid answer, so answers are checked against the
# original single-repetition pattern.
PATTERN_CHUNK = 64


def printable_pattern(max_length: int, min_length: int = 0) -> str:
    return f"^{PRINTABLE_CLASS}{{{min_length},{max_length}}}$"


def chunked_printable_pattern(max_length: int, min_length: int = 0) -> str:
    """`printable_pattern` as repetitions of at most `PATTERN_CHUNK`: for grammar compilers only."""
    chunks, lo_left, hi_left = [], min_length, max_length
    while hi_left > 0 or not chunks:
        hi = min(PATTERN_CHUNK, hi_left)
        lo = min(lo_left, hi)
        chunks.append(f"{PRINTABLE_CLASS}{{{lo},{hi}}}")
        lo_left, hi_left = lo_left - lo, hi_left - hi
    return "^" + "".join(chunks) + "$"


def grammar_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `schema` for vLLM's grammar compiler (in-process or a server): long printable patterns
    chunked (see `PATTERN_CHUNK`); everything else unchanged."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            m = _PRINTABLE_RE.match(out["pattern"]) if isinstance(out.get("pattern"), str) else None
            if m and int(m.group(2)) > PATTERN_CHUNK:
                out["pattern"] = chunked_printable_pattern(int(m.group(2)), int(m.group(1)))
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(dict(schema))


def make_xgrammar_safe(
    schema: Mapping[str, Any],
    *,
    max_string_length: int = 200,
    max_items: int = 16,
    integer_range: tuple[int, int] = (0, 1_000_000),
    number_range: tuple[float, float] = (-1_000_000.0, 1_000_000.0),
    close_objects: bool = True,
) -> dict[str, Any]:
    """Return a copy of ``schema`` where every string, number and array is bounded.

    - strings without ``enum``/``const``/``pattern``/``format`` get a printable pattern
      ``^[ -!#-\\[\\]-~]{min,max}$`` that carries the length bounds (``maxLength`` kept if smaller, then
      dropped: vLLM refuses pattern + maxLength with xgrammar); strings with a ``format`` get ``maxLength``;
      strings with their own ``pattern`` are left alone (bound its repetitions yourself);
    - integers/numbers get ``minimum``/``maximum`` when missing (exclusive bounds count as bounds);
    - arrays get ``maxItems`` when missing;
    - objects without ``additionalProperties`` get ``additionalProperties: false`` (``close_objects``).
    ``anyOf``/``oneOf``/``allOf``, ``items``, ``prefixItems``, ``properties`` and ``$defs`` are walked.
    """
    out = copy.deepcopy(dict(schema))

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        types = node.get("type")
        type_set = set(types) if isinstance(types, list) else {types} if types else set()
        fixed = "enum" in node or "const" in node
        if "string" in type_set and not fixed:
            limit = min(int(node.get("maxLength", max_string_length)), max_string_length)
            if "pattern" not in node and "format" not in node:
                # The pattern carries the length bounds: vLLM rejects pattern + maxLength for xgrammar.
                node["pattern"] = printable_pattern(limit, min(limit, int(node.pop("minLength", 0))))
                node.pop("maxLength", None)
            elif "pattern" not in node:
                node["maxLength"] = limit
        if "integer" in type_set and not fixed:
            if "minimum" not in node and "exclusiveMinimum" not in node:
                node["minimum"] = integer_range[0]
            if "maximum" not in node and "exclusiveMaximum" not in node:
                node["maximum"] = integer_range[1]
        if "number" in type_set and not fixed:
            if "minimum" not in node and "exclusiveMinimum" not in node:
                node["minimum"] = number_range[0]
            if "maximum" not in node and "exclusiveMaximum" not in node:
                node["maximum"] = number_range[1]
        if "array" in type_set and "maxItems" not in node:
            node["maxItems"] = max(max_items, int(node.get("minItems", 0)))
        if ("object" in type_set or "properties" in node) and close_objects:
            node.setdefault("additionalProperties", False)
        for key in ("properties", "$defs", "definitions", "patternProperties"):
            for child in (node.get(key) or {}).values():
                walk(child)
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for child in node.get(key) or []:
                walk(child)
        for key in ("items", "additionalProperties", "not"):
            if isinstance(node.get(key), dict):
                walk(node[key])

    walk(out)
    return out


class UnboundedSchemaError(ValueError):
    """The schema allows answers of unbounded length."""


def estimate_max_chars(schema: Mapping[str, Any]) -> int:
    """Worst-case length in characters of a compact JSON answer valid against ``schema``.

    Raises UnboundedSchemaError naming the path of the first unbounded part (run ``make_xgrammar_safe``).
    """
    return _Sizer(dict(schema)).size(schema, "$", ())


class _Sizer:
    """The worst-case compact-JSON size of each schema node, with ``$ref``s resolved in `root`."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise UnboundedSchemaError(f"cannot size external $ref {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def size(self, node: Any, path: str, seen: tuple[str, ...]) -> int:
        if node is True or node == {}:
            raise UnboundedSchemaError(f"{path}: any value allowed")
        if node is False:
            return 0
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise UnboundedSchemaError(f"{path}: recursive $ref {ref}")
            return self.size(self.resolve(ref), path, (*seen, ref))
        if "const" in node:
            return len(json.dumps(node["const"], separators=(",", ":")))
        if "enum" in node:
            return max(len(json.dumps(v, separators=(",", ":"))) for v in node["enum"])
        for key in ("anyOf", "oneOf"):
            if key in node:
                return max(self.size(c, f"{path}/{key}[{i}]", seen) for i, c in enumerate(node[key]))
        if "allOf" in node:
            return min(self.size(c, f"{path}/allOf[{i}]", seen) for i, c in enumerate(node["allOf"]))
        types = node.get("type")
        if isinstance(types, list):
            return max(self.size({**node, "type": t}, path, seen) for t in types)
        if types in ("null", "boolean"):
            return 4 if types == "null" else 5
        if types in ("integer", "number"):
            return _number_size(node, path, types)
        if types == "string":
            return _string_size(node, path)
        if types == "array":
            return self.array(node, path, seen)
        if types == "object" or "properties" in node:
            return self.object(node, path, seen)
        raise UnboundedSchemaError(f"{path}: cannot size schema node {node!r:.80}")

    def array(self, node: Mapping[str, Any], path: str, seen: tuple[str, ...]) -> int:
        prefix = node.get("prefixItems") or []
        n_max = node.get("maxItems")
        if n_max is None:
            if not (prefix and node.get("items") is False):
                raise UnboundedSchemaError(f"{path}: array without maxItems")
            n_max = len(prefix)
        total = 2 + max(0, int(n_max) - 1)
        for i in range(int(n_max)):
            child = prefix[i] if i < len(prefix) else node.get("items", {})
            total += self.size(child, f"{path}[{i}]", seen)
        return total

    def object(self, node: Mapping[str, Any], path: str, seen: tuple[str, ...]) -> int:
        props = node.get("properties") or {}
        if node.get("additionalProperties", True) is not False:
            raise UnboundedSchemaError(f"{path}: object allows additional properties")
        total = 2 + max(0, len(props) - 1)
        for key, child in props.items():
            total += len(json.dumps(key)) + 1 + self.size(child, f"{path}/{key}", seen)
        return total


def _number_size(node: Mapping[str, Any], path: str, kind: str) -> int:
    lo = node.get("minimum", node.get("exclusiveMinimum"))
    hi = node.get("maximum", node.get("exclusiveMaximum"))
    if lo is None or hi is None:
        raise UnboundedSchemaError(f"{path}: {kind} without minimum and maximum")
    digits = max(len(str(int(math.floor(lo)))), len(str(int(math.ceil(hi)))))
    return digits if kind == "integer" else digits + 24  # a bounded number may carry a fraction and an exponent


def _string_size(node: Mapping[str, Any], path: str) -> int:
    printable = _PRINTABLE_RE.match(node.get("pattern", ""))
    if printable:  # printable-pattern strings never need escapes: one char each
        return 2 + min(int(printable.group(2)), int(node.get("maxLength", 1 << 30)))
    if "maxLength" not in node:
        raise UnboundedSchemaError(f"{path}: string without maxLength")
    return 2 + 6 * int(node["maxLength"])  # worst case: every char escaped as \uXXXX


def estimate_max_tokens(schema: Mapping[str, Any], *, margin: float = 1.1, minimum: int = 16) -> int:
    """Upper bound on the tokens of a schema-constrained compact answer, plus the end token.

    Byte-level BPE tokens hold at least one byte, and safe schemas emit printable ASCII only, so the
    worst case in tokens is the worst case in characters; ``margin`` covers whitespace the backend may add.
    """
    return max(minimum, int(math.ceil(estimate_max_chars(schema) * margin)) + 2)
