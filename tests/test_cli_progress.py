"""One progress display: a single bar on a terminal, plain log lines (no cursor escapes) in a log file."""

from __future__ import annotations

import io
import logging

import pytest

from lerobot_keyframes.progress import RunProgress, progress_mode


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
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-1] == "annotate: plan 3/3, vqa 1/3" and len(lines) == 5
    assert not any("\x1b" in line or "\r" in line for line in lines)


def test_bar_mode_is_one_bar_counting_every_module() -> None:
    stream = Tty()
    with RunProgress(["plan", "interjections", "vqa"], 2, mode="bar", stream=stream) as progress:
        for module in ("plan", "plan", "interjections", "vqa"):
            progress.advance(module)
    text = stream.getvalue()
    assert "4/6" in text and "plan 2/2, interjections 1/2, vqa 1/2" in text
    assert "\x1b[A" not in text  # one bar: nothing to move the cursor up for
