"""One progress display: a single bar on a terminal, plain log lines (no cursor escapes) in a log file.

The display counts (episode, module) steps as they are staged, with rate and ETA; on a terminal log records go
above the bar (never onto its line) and transformers' own "Loading weights" bar stays off; in a log file the
lines carry the time. Both are checked by running the CLI: with stderr to a file, and under a pseudo-terminal.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_keyframes.progress import RunProgress, progress_mode

CLI = [sys.executable, "-m", "lerobot_keyframes.cli"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_stream_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEROBOT_KEYFRAMES_PROGRESS", raising=False)
    assert progress_mode(Tty()) == "bar" and progress_mode(io.StringIO()) == "log"
    monkeypatch.setenv("LEROBOT_KEYFRAMES_PROGRESS", "off")
    assert progress_mode(Tty()) == "off"


def test_log_mode_writes_plain_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lerobot_keyframes.progress")
    with RunProgress(["plan", "vqa"], 3, mode="log", interval=0.0) as progress:
        for _ in range(3):
            progress.advance("plan")
        progress.advance("vqa")
        progress.drop(1)  # an episode failed before its vqa step
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5, lines  # one per step, one for the drop at the end; the closing line is not repeated
    assert re.fullmatch(r"annotate: 1/6 steps \(17%\) \[plan 1/3, vqa 0/3\]; [\d.]+ steps/s, elapsed 00:00, ETA "
                        r"\d\d:\d\d", lines[0]), lines[0]
    assert lines[-1].startswith("annotate: 4/5 steps (80%) [plan 3/3, vqa 1/3, 1 step(s) not run (failed episodes)]; ")
    assert not any("\x1b" in line or "\r" in line for line in lines)


def test_bar_mode_is_one_bar_counting_every_module() -> None:
    stream = Tty()
    with RunProgress(["plan", "interjections", "vqa"], 2, mode="bar", stream=stream) as progress:
        for module in ("plan", "plan", "interjections", "vqa"):
            progress.advance(module)
    text = stream.getvalue()
    assert "4/6" in text and "plan 2/2, interjections 1/2, vqa 1/2" in text
    assert "\x1b[A" not in text  # one bar: nothing to move the cursor up for


def test_log_lines_are_timed_even_without_steps(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lerobot_keyframes.progress")
    with RunProgress(["keyframes"], 2, desc="keyframes", unit="episode", mode="log", interval=3600.0) as progress:
        progress.advance("keyframes")  # inside the interval: no line yet
        assert not caplog.records
    (line,) = [r.getMessage() for r in caplog.records]  # the closing line
    assert re.fullmatch(r"keyframes: 1/2 episodes \(50%\); [\d.]+ episodes/s, elapsed 00:00, ETA \d\d:\d\d", line), line


ANNOTATE = ("annotate", "--plan.enabled=true", "--interjections.enabled=true", "--vqa.enabled=true",
            "--quality.enabled=false")


def _annotate_args(sample_root: Path, tmp_path: Path) -> list[str]:
    from lerobot_keyframes.testing.tiny_qwen import tiny_qwen_cached

    model = tiny_qwen_cached("qwen2_5_vl")
    return [*ANNOTATE, f"--root={sample_root}", f"--out={tmp_path / 'out'}", f"--vlm.model_id={model}"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEROBOT_KEYFRAMES_PROGRESS", "TQDM_"))}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    return {**env, **extra}


def test_a_log_file_gets_timed_lines_counting_module_steps(sample_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    with log.open("w") as stderr:  # a real file, as `annotate ... 2> run.log` gives
        proc = subprocess.run([*CLI, *_annotate_args(sample_root, tmp_path)], stdout=subprocess.PIPE, stderr=stderr,
                              text=True, timeout=600, env=_env(LEROBOT_KEYFRAMES_PROGRESS_INTERVAL="0"))
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    pattern = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO lerobot_keyframes\.progress: annotate: (\d+)/6 steps "
                         r"\(\d+%\) \[plan (\d)/2, interjections (\d)/2, vqa (\d)/2\]; [\d.]+ steps/s, "
                         r"elapsed \d\d:\d\d, ETA (\d\d:\d\d|\?)$")
    found = [pattern.match(line) for line in text.splitlines() if "lerobot_keyframes.progress" in line]
    assert found and all(found), text
    counts = [int(m.group(1)) for m in found]
    assert counts == list(range(1, 7)), counts  # every (episode, module) step as it is staged, not per episode
    assert any(int(m.group(2)) == 2 and int(m.group(4)) < 2 for m in found)  # plans counted while vqa runs
    assert "\r" not in text and "\x1b" not in text and "Loading weights" not in text
    # INFO lines name the output root, never the temporary folder it is built in before the rename
    assert f"into {tmp_path / 'out'}\n" in text and ".tmp-" not in text, text
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in text.splitlines()), text


def _run_in_pty(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal of 120 columns (a user's terminal); what it showed there."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=600), b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_one_bar_and_log_lines_above_it(sample_root: Path, tmp_path: Path) -> None:
    code, shown = _run_in_pty([*CLI, *_annotate_args(sample_root, tmp_path)], _env())
    assert code == 0, shown[-3000:]
    assert "Loading weights" not in shown and "\x1b[A" not in shown, shown  # transformers' bar stays off
    lines = shown.replace("\r\n", "\n").split("\n")
    labels = {m.group(1) for line in lines for m in re.finditer(r"\r?([A-Za-z ]+):\s+\d+%\|", line)}
    assert labels == {"annotate"}, (labels, shown)  # one display
    for line in lines:  # what a line shows is what follows its last carriage return
        visible = line.rsplit("\r", 1)[-1]
        if "INFO " in visible:
            assert visible.startswith("INFO "), (visible, shown)  # never written after the bar on its line
    assert any("INFO " in line for line in lines) and re.search(r"6/6 \[[\d:]+<[\d:]+, +[\d.]+(step/s|s/step), "
                                                              r"plan 2/2, interjections 2/2, vqa 2/2\]", shown), shown


def test_keyframes_in_a_log_file_logs_its_episodes(sample_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "keyframes.log"
    args = ["keyframes", str(sample_root), f"--out={tmp_path / 'kf'}", "--policy=uniform:2", "--use_cache=false"]
    with log.open("w") as stderr:
        proc = subprocess.run([*CLI, *args], stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=600,
                              env=_env(LEROBOT_KEYFRAMES_PROGRESS_INTERVAL="0"))
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    lines = [line for line in text.splitlines() if "lerobot_keyframes.progress" in line]
    assert len(lines) == 2 and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO lerobot_keyframes\.progress: "
                                                r"keyframes: \d/2 episodes \(\d+%\); [\d.]+ episodes/s, elapsed "
                                                r"\d\d:\d\d, ETA \d\d:\d\d", line) for line in lines), text
    assert [line.split("keyframes: ")[1][:3] for line in lines] == ["1/2", "2/2"]
    assert "\r" not in text and "\x1b" not in text
    # the summary names every column the transform added, for every camera (not only the last three)
    cams = ("observation.images.front", "observation.images.wrist")
    expected = ", ".join([*(f"{kind}.{cam}" for cam in cams for kind in ("keyframes", "keyframe_timestamps")),
                          "messages"])
    assert proc.stdout == f"2 episodes, columns {expected} -> {tmp_path / 'kf'}\n"
