"""One progress display per run: a single tqdm bar on a terminal, plain log lines in a log file.

A run counts steps — one per (episode, module) — as each module of each episode is staged, so the display
moves while episodes are still in flight. On a terminal it is one tqdm bar (done/total, rate, ETA; each
module's count in its postfix), and log records are routed through `tqdm.write` while it is shown
(`logging_redirect_tqdm`) so they never land on the bar's line. Off a terminal (or with
`LEROBOT_KEYFRAMES_PROGRESS=log`) it logs a line at most every `interval` seconds
(`LEROBOT_KEYFRAMES_PROGRESS_INTERVAL`, default 30) and one at the end: done/total, per module, rate, elapsed and
ETA (the CLI's log format adds the time of day). `-q` / `LEROBOT_KEYFRAMES_PROGRESS=off` shows nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

logger = logging.getLogger("lerobot_keyframes.progress")
MODE_ENV = "LEROBOT_KEYFRAMES_PROGRESS"  # bar | log | off (default: bar on a terminal, else log)
INTERVAL_ENV = "LEROBOT_KEYFRAMES_PROGRESS_INTERVAL"  # seconds between log lines (default 30)


def progress_mode(stream: TextIO | None = None) -> str:
    mode = os.environ.get(MODE_ENV, "").strip().lower()
    if mode in ("bar", "log", "off"):
        return mode
    stream = stream if stream is not None else sys.stderr
    return "bar" if getattr(stream, "isatty", lambda: False)() else "log"


def log_interval(default: float = 30.0) -> float:
    """Seconds between progress log lines: `LEROBOT_KEYFRAMES_PROGRESS_INTERVAL`, else `default`."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, default)))
    except ValueError:
        return default


def _clock(seconds: float) -> str:
    from tqdm import tqdm

    return tqdm.format_interval(max(0.0, seconds))


class RunProgress:
    """Counts finished steps per module: `advance("plan")` when a module of an episode is staged; `drop(n)`
    for steps that will not run (a failed episode's later modules); `close()` at the end (or use `with`).

    With a single module named after the display (`RunProgress(["keyframes"], n, desc="keyframes",
    unit="episode")`) the per-module counts are left out."""

    def __init__(self, modules: Sequence[str], episodes: int, *, desc: str = "annotate", unit: str = "step",
                 interval: float | None = None, stream: Any = None, mode: str | None = None) -> None:
        self.modules = list(modules)
        self.episodes = episodes
        self.done = dict.fromkeys(self.modules, 0)
        self.total = episodes * len(self.modules)
        self.dropped = 0
        self.desc = desc
        self.unit = unit
        self.interval = log_interval() if interval is None else interval
        self.mode = mode or progress_mode(stream)
        self._started = self._last = time.monotonic()
        self._logged = (-1, -1)  # (done, total) of the last log line: the closing line is not a repeat
        self._bar = None
        self._redirect = None
        if self.mode == "bar" and self.modules:
            from tqdm.auto import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=stream, dynamic_ncols=True, leave=True)
            self._redirect = logging_redirect_tqdm(tqdm_class=type(self._bar))  # log lines above the bar
            self._redirect.__enter__()

    @property
    def finished(self) -> int:
        return sum(self.done.values())

    def text(self) -> str:
        """Each module's count (`plan 3/3, vqa 1/3`), and the failed steps; empty for a single-module display."""
        parts = [] if self.modules == [self.desc] else [f"{m} {self.done[m]}/{self.episodes}" for m in self.modules]
        if self.dropped:
            parts.append(f"{self.dropped} {self.unit}(s) not run (failed episodes)")
        return ", ".join(parts)

    def line(self) -> str:
        """`annotate: 6/9 steps (67%) [plan 3/3, ...]; 0.21 steps/s, elapsed 00:28, ETA 00:14`."""
        done, total = self.finished, max(self.total, 0)
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = _clock((total - done) / rate) if rate > 0 and total >= done else "?"
        percent = f" ({100 * done / total:.0f}%)" if total else ""
        detail = f" [{self.text()}]" if self.text() else ""
        return (f"{self.desc}: {done}/{total} {self.unit}s{percent}{detail}; {rate:.2f} {self.unit}s/s, "
                f"elapsed {_clock(elapsed)}, ETA {eta}")

    def advance(self, module: str, n: int = 1) -> None:
        if module not in self.done:
            self.modules.append(module)
            self.done[module] = 0
            self.total += self.episodes
        self.done[module] += n
        if self._bar is not None:
            self._bar.set_postfix_str(self.text(), refresh=False)
            self._bar.update(n)
        elif self.mode == "log" and time.monotonic() - self._last >= self.interval:
            self._log()

    def drop(self, n: int) -> None:
        """`n` steps will not run (their episode failed): the total shrinks, so done/total and the ETA stay true."""
        if n <= 0:
            return
        self.dropped += n
        self.total -= n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.set_postfix_str(self.text(), refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            if self._redirect is not None:
                self._redirect.__exit__(None, None, None)
                self._redirect = None
        elif self.mode == "log" and self.modules:
            if self._logged != (self.finished, self.total):
                self._log()
            self.mode = "off"

    def _log(self) -> None:
        self._last, self._logged = time.monotonic(), (self.finished, self.total)
        logger.info("%s", self.line())

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def quiet_transformers_bars() -> None:
    """Turn off transformers' own bars (its "Loading weights" bar would be a second display beside the run's);
    huggingface_hub's download bars keep their setting. A no-op where transformers is not installed."""
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    hub_bars_off = are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()  # also turns huggingface_hub's off: restore them
    if not hub_bars_off:
        enable_progress_bars()
