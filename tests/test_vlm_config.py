"""VlmConfig's option sets: Literal types that the CLI shows as choices, checked when the config is made."""

from __future__ import annotations

import argparse
import typing

import pytest

from lerobot_keyframes.cli.flags import add_dataclass_flags
from lerobot_keyframes.vlm import BACKENDS, VlmConfig
from lerobot_keyframes.vlm.config import DTYPES, REASONING_EFFORTS, STRUCTURED_OUTPUT_MODES


def test_option_sets_are_the_literal_types_of_their_fields() -> None:
    hints = typing.get_type_hints(VlmConfig)
    assert typing.get_args(hints["backend"]) == BACKENDS == ("transformers", "vllm", "openai")
    assert typing.get_args(hints["structured_output"]) == STRUCTURED_OUTPUT_MODES
    assert typing.get_args(hints["dtype"]) == DTYPES
    effort = [a for a in typing.get_args(hints["reasoning_effort"]) if a is not type(None)]
    assert typing.get_args(effort[0]) == REASONING_EFFORTS


def test_the_cli_shows_the_choices() -> None:
    parser = argparse.ArgumentParser()
    add_dataclass_flags(parser, "vlm", VlmConfig)
    metavars = {a.option_strings[0]: a.metavar for a in parser._actions if a.option_strings}
    assert metavars["--vlm.backend"] == "{transformers,vllm,openai}"
    assert metavars["--vlm.structured_output"] == "{auto,schema,json_object,off}"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("backend", "stub", "--vlm.backend='stub': choose one of transformers, vllm, openai"),
    ("structured_output", "grammar", "--vlm.structured_output='grammar': choose one of auto, schema"),
    ("dtype", "int8", "--vlm.dtype='int8': choose one of auto, bfloat16, float16, float32"),
    ("reasoning_effort", "max", "--vlm.reasoning_effort must be one of none, minimal, low"),
])
def test_a_value_outside_its_set_fails_when_the_config_is_made(field: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        VlmConfig(**{field: value})


def test_dtype_spellings_name_one_precision() -> None:
    names = {dtype: VlmConfig(dtype=dtype).dtype_name for dtype in DTYPES}
    assert names == {"auto": "auto", "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "float16",
                     "fp16": "float16", "half": "float16", "float32": "float32", "fp32": "float32",
                     "float": "float32"}


def test_pixel_bounds_join_the_processor_kwargs_unless_given_there() -> None:
    assert VlmConfig().processor_kwargs == {}
    cfg = VlmConfig(min_pixels=100, max_pixels=900, mm_processor_kwargs={"max_pixels": 500, "fps": 2})
    assert cfg.processor_kwargs == {"max_pixels": 500, "fps": 2, "min_pixels": 100}
    assert cfg.mm_processor_kwargs == {"max_pixels": 500, "fps": 2}  # the config itself is left as given
