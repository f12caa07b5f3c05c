"""Inputs that cost memory or stack out of proportion to their size are refused, in one line, before any work.

- an episode range like `0-999999999` (flag or config file) was expanded into a list before anything looked at
  the dataset: ~36 GB, until the kernel killed the process;
- a YAML alias bomb (nine aliases of nine aliases ...) in a dict-valued flag or a config file is a few hundred
  bytes that `config_hash` expanded to 9^9 values;
- a 50 kB `[[[[...` value, config file or info.json raised RecursionError (a traceback);
- a config file of any size was read whole.

The runs that could exhaust memory without the bounds run in a subprocess under a 2 GiB address-space limit, so
a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from adversarial_helpers import model_flags, one_error_line

sys.path.insert(0, str(Path(__file__).parent))
import _b_helpers as h  # noqa: E402

LIMIT = 2 << 30


def _run_limited(*argv: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`lerobot-keyframes ARGV` in a child process whose address space is capped at 2 GiB."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

    return subprocess.run([sys.executable, "-m", "lerobot_keyframes.cli", *map(str, argv)], env=h.cli_env(),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=cap, cwd=h.REPO)


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A YAML flow mapping whose last key expands to width**levels values through aliases (~400 bytes)."""
    parts = ["a0: &a0 [" + ",".join(["x"] * width) + "]"]
    for i in range(1, levels):
        parts.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "{" + ", ".join(parts) + "}"


@pytest.mark.parametrize("via", ["flag", "config_file"])
def test_an_episode_range_far_beyond_the_dataset_is_refused_before_it_is_expanded(tiny: Path, tmp_path: Path,
                                                                                 via: str) -> None:
    if via == "flag":
        args: list[str | Path] = ["validate", tiny, "--episodes=0-999999999"]
    else:
        config = tmp_path / "run.yaml"
        config.write_text("only_episodes: 0-999999999\n")
        args = ["annotate", f"--root={tiny}", f"--out={tmp_path / 'out'}", f"--config_path={config}",
                *model_flags("http://127.0.0.1:9/v1")]
    done = _run_limited(*args)
    assert done.returncode == 2, done.stderr[-2000:]
    line = one_error_line(done.stderr)
    assert "0-999999999" in line and "1000000000 integers" in line
    assert not (tmp_path / "out").exists()


def test_list_sizes_are_counted_before_expanding() -> None:
    import argparse

    from lerobot_keyframes.cli.values import MAX_LISTED, parse_int_list

    assert parse_int_list("0-2,7") == (0, 1, 2, 7)
    with pytest.raises(argparse.ArgumentTypeError, match=f"lists {MAX_LISTED + 2} integers"):
        parse_int_list(f"0-{MAX_LISTED // 2},0-{MAX_LISTED // 2}")


@pytest.mark.parametrize("via", ["flag", "config_file"])
def test_a_yaml_alias_bomb_in_a_dict_valued_flag_is_refused_at_parse(tiny: Path, tmp_path: Path, model_server,
                                                                      via: str) -> None:
    bomb = _alias_bomb()
    assert len(bomb) < 500
    if via == "flag":
        given = [f"--vlm.chat_template_kwargs={bomb}"]
    else:
        config = tmp_path / "run.yaml"
        config.write_text(f"vlm:\n  chat_template_kwargs: {bomb}\n")
        given = [f"--config_path={config}"]
    done = _run_limited("annotate", f"--root={tiny}", f"--out={tmp_path / 'out'}",
                        *model_flags(model_server.api_base), *given)
    assert done.returncode == 2, done.stderr[-2000:]
    line = one_error_line(done.stderr)
    assert "expands to more than 100000 values" in line
    assert ("--vlm.chat_template_kwargs" if via == "flag" else str(tmp_path / "run.yaml")) in line
    assert model_server.stats.requests == 0 and not (tmp_path / "out").exists()


def test_a_self_referencing_yaml_value_is_refused() -> None:
    from lerobot_keyframes.utils.structured import InputBoundsError, load_yaml

    with pytest.raises(InputBoundsError, match=r"cfg.yaml: (expands to more than|nested deeper than)"):
        load_yaml("a: &a [1, *a]", "cfg.yaml")


def test_deep_nesting_is_refused_in_one_line_not_a_recursion_error(tiny: Path, tmp_path: Path, cli) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    rc, _, err = cli("annotate", f"--root={tiny}", f"--out={tmp_path / 'a'}", '--vlm.chat_template_kwargs={"a": '
                     + deep + "}", *model_flags("http://127.0.0.1:9/v1"))
    assert rc == 2 and "--vlm.chat_template_kwargs: nested too deeply" in one_error_line(err)

    config = tmp_path / "deep.yaml"
    config.write_text("vlm:\n  chat_template_kwargs: {a: " + deep + "}\n")
    rc, _, err = cli("annotate", f"--root={tiny}", f"--out={tmp_path / 'b'}", f"--config_path={config}")
    assert rc == 2 and f"--config_path={config}: nested too deeply" in one_error_line(err)

    info = tiny / "meta/info.json"
    info.write_text('{"codebase_version": "v3.0", "x": ' + deep + "}")
    rc, _, err = cli("info", tiny)
    assert rc == 2 and f"{info}: nested too deeply" in one_error_line(err)
    shallow_but_deep_enough = json.dumps({"codebase_version": "v3.0", "x": json.loads("[" * 100 + "]" * 100)})
    info.write_text(shallow_but_deep_enough)  # json reads it, but what we write back must stay writable
    rc, _, err = cli("info", tiny)
    assert rc == 2 and f"{info}: nested deeper than 64 levels" in one_error_line(err)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_config_file_over_1_mib_is_refused_before_it_is_read(tiny: Path, tmp_path: Path, cli) -> None:
    config = tmp_path / "big.yaml"
    config.write_text("vlm:\n  model_id: x\n# " + "y" * (2 << 20) + "\n")
    rc, _, err = cli("annotate", f"--root={tiny}", f"--config_path={config}")
    assert rc == 2
    line = one_error_line(err)
    assert f"--config_path={config}" in line and "more than the 1048576 bytes" in line


@pytest.mark.parametrize("policy, says", [("at:nan", "finite"), ("at:0.5,inf", "finite"), ("fps:inf", "finite")])
def test_a_keyframe_time_or_rate_that_is_not_a_finite_number_is_refused(tiny_root: Path, tmp_path: Path, cli,
                                                                        policy: str, says: str) -> None:
    rc, _, err = cli("keyframes", tiny_root, "--out", tmp_path / "kf", "--policy", policy)
    assert rc == 2 and says in one_error_line(err) and policy in one_error_line(err)
    assert not (tmp_path / "kf").exists()


def test_a_rate_far_above_the_frame_rate_takes_every_frame_without_allocating_it() -> None:
    import numpy as np

    from lerobot_keyframes.frames.policies import parse_policy

    episode = {"episode_index": 0, "fps": 30, "timestamps": np.arange(31, dtype=np.float32) / 30}
    assert parse_policy("fps:1e308").frame_indices(episode).tolist() == list(range(31))  # was a 1e308-long arange
    assert parse_policy("fps:30").frame_indices(episode).tolist() == list(range(31))
