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


SERVE = "vllm serve m --max-num-seqs 8 --quantization fp8 --port {port}"


@pytest.mark.parametrize(("backend", "auto_serve", "why"), [
    ("transformers", False, "--vlm.backend=transformers runs the model in this process and ignores it"),
    ("vllm", False, "only the command's engine options (--max-model-len, --max-num-seqs, ...) apply to it"),
    ("openai", False, "without it the run uses the servers already at --vlm.api_base"),
])
def test_a_serve_command_that_is_not_run_is_warned_about(backend: str, auto_serve: bool, why: str) -> None:
    from lerobot_keyframes.vlm.config import unapplied_vlm_settings

    (msg,) = unapplied_vlm_settings(VlmConfig(backend=backend, auto_serve=auto_serve, serve_command=SERVE))
    assert msg.startswith("--vlm.serve_command is not run: it starts a server with --vlm.backend=openai "
                          "--vlm.auto_serve=true only") and msg.endswith(why)
    assert unapplied_vlm_settings(VlmConfig(backend=backend, serve_command=SERVE), local=False) == []  # a job's run


def test_a_serve_command_that_auto_serve_runs_is_not_warned_about() -> None:
    from lerobot_keyframes.vlm.config import unapplied_vlm_settings

    assert unapplied_vlm_settings(VlmConfig(backend="openai", auto_serve=True, serve_command=SERVE)) == []
    assert unapplied_vlm_settings(VlmConfig(backend="transformers")) == []


def test_the_cli_warns_once_about_a_local_serve_command_with_an_in_process_backend(sample_root, tmp_path) -> None:
    """lerobot-annotate's --vlm.serve_command given to a run with the in-process transformers backend (our
    default): one warning line before anything else, instead of silence."""
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "c")}
    proc = subprocess.run([sys.executable, "-m", "lerobot_keyframes.cli", "annotate", f"--root={sample_root}",
                           f"--out={tmp_path / 'out'}", f"--vlm.serve_command={SERVE}", "--vlm.model_id=m"],
                          capture_output=True, text=True, timeout=300, env=env)
    lines = proc.stderr.splitlines()
    first = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", "", lines[0])  # off a terminal, log lines carry the time
    assert first == ("WARNING lerobot_keyframes.cli: --vlm.serve_command is not run: it starts a server with "
                        "--vlm.backend=openai --vlm.auto_serve=true only (as in lerobot-annotate); "
                        "--vlm.backend=transformers runs the model in this process and ignores it"), proc.stderr
    assert sum("--vlm.serve_command is not run" in line for line in lines) == 1
