"""The schema vLLM's grammar compiler gets: long printable strings as chunks of at most 64 (same strings)."""

from __future__ import annotations

import re

from lerobot_keyframes.annotate.modules import schemas
from lerobot_keyframes.vlm.schema import PATTERN_CHUNK, PRINTABLE_CLASS, grammar_schema, printable_pattern


def _repetitions(pattern: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(re.escape(PRINTABLE_CLASS) + r"\{(\d+),(\d+)\}", pattern)]


def test_long_printable_patterns_are_chunked_to_the_same_bounds() -> None:
    schema = schemas.interjection_schema(8)  # strings of 160 and 80 characters, inside an array too
    out = grammar_schema(schema)
    for key, longest in (("interjection", 160), ("reply", 160)):
        reps = _repetitions(out["properties"][key]["pattern"])
        assert all(hi <= PATTERN_CHUNK for _, hi in reps) and len(reps) == 3
        assert sum(lo for lo, _ in reps) == 1 and sum(hi for _, hi in reps) == longest
    assert out["properties"]["plan"]["items"]["pattern"] != schema["properties"]["plan"]["items"]["pattern"]
    assert schema["properties"]["reply"]["pattern"] == printable_pattern(160, 1)  # the original is untouched
    short = schemas.obj(label=schemas.text(40))
    assert grammar_schema(short) == short


def test_a_chunked_pattern_accepts_exactly_the_strings_of_the_original() -> None:
    original = printable_pattern(130, 70)
    chunked = grammar_schema({"type": "string", "pattern": original})["pattern"]
    for text in ["a" * 69, "a" * 70, "b" * 130, "c" * 131, 'x"y' * 30, "ok " * 30]:
        assert bool(re.fullmatch(original, text)) == bool(re.fullmatch(chunked, text)), text
