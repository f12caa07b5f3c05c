"""The console script, run the way users run it: as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_keyframes.cli import build_parser, main

CLI = [sys.executable, "-m", "lerobot_keyframes.cli"]


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: lerobot-keyframes " + command)


def test_flag_help_is_the_comment_on_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    from lerobot_keyframes.annotate.config import AnnotateConfig
    from lerobot_keyframes.cli.flags import field_comments

    assert field_comments(AnnotateConfig)["frame_cache_mb"].startswith("decoded frames kept for the modules")
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--frame_cache_mb INT decoded frames kept for the modules that ask for the same keyframes (default: 64)" in text
    assert "--job.timeout STR always set: s, m, h or d suffix, or seconds (default: '2h')" in text


def test_console_script_help() -> None:
    proc = _run("--help")
    for command in _subcommands():
        assert command in proc.stdout


def test_info_text_and_json(sample_root: Path) -> None:
    text = _run("info", str(sample_root)).stdout
    assert "episodes  2" in text
    assert "observation.images.front" in text and "av1" in text
    assert "language_persistent: no" in text
    data = json.loads(_run("info", str(sample_root), "--json").stdout)
    assert data["episodes"] == 2 and data["codebase_version"] == "v3.0"
    assert {c["key"] for c in data["cameras"]} == {"observation.images.front", "observation.images.wrist"}
    assert all(c["files"] == 1 for c in data["cameras"])


def test_info_reports_broken_dataset_without_traceback(tmp_path: Path) -> None:
    proc = _run("info", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert "meta/info.json: missing" in proc.stderr and "Traceback" not in proc.stderr


def test_sample_command_writes_a_readable_dataset(tmp_path: Path) -> None:
    out = tmp_path / "s"
    proc = _run("sample", str(out), "--episodes", "1", "--cameras", "front", "--codec", "h264", "--episode-seconds", "1")
    assert Path(proc.stdout.strip()) == out
    assert f"-> {out}" in proc.stderr and ".partial" not in proc.stderr  # the log names the root, not its temp name
    data = json.loads(_run("info", str(out), "--json").stdout)
    assert data["episodes"] == 1 and data["cameras"][0]["codec"] == "h264"
    assert _run("sample", str(out), check=False).returncode != 0  # refuses to overwrite by default


def test_top_level_exports_resolve() -> None:
    import lerobot_keyframes as lk

    for name in lk.__all__:
        assert getattr(lk, name) is not None, name
    with pytest.raises(AttributeError):
        lk.not_a_thing  # noqa: B018
