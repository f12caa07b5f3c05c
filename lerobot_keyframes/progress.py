"""One progress display per run: a single tqdm bar on a terminal, plain log lines in a log file.

Several tqdm bars at once redraw with cursor-up escapes (`ESC[A`) that litter a non-terminal log; a run
therefore gets one `RunProgress` whose bar counts every module's episodes and names each module's count in
its postfix. Off a terminal (or with `-q` / `LEROBOT_KEYFRAMES_PROGRESS=log|off`) it writes a log line at
most every `interval` seconds and one at the end instead.
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


def progress_mode(stream: TextIO | None = None) -> str:
    mode = os.environ.get(MODE_ENV, "").strip().lower()
    if mode in ("bar", "log", "off"):
        return mode
    stream = stream if stream is not None else sys.stderr
    return "bar" if getattr(stream, "isatty", lambda: False)() else "log"


class RunProgress:
    """Counts finished episodes per module: `advance("plan")`; `close()` at the end (or use `with`)."""

    def __init__(self, modules: Sequence[str], episodes: int, *, desc: str = "annotate", interval: float = 30.0,
                 stream: Any = None, mode: str | None = None) -> None:
        self.modules = list(modules)
        self.episodes = episodes
        self.done = dict.fromkeys(self.modules, 0)
        self.desc = desc
        self.interval = interval
        self.mode = mode or progress_mode(stream)
        self._last = time.monotonic()
        self._bar = None
        if self.mode == "bar" and self.modules:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=episodes * len(self.modules), desc=desc, unit="step", file=stream,
                             dynamic_ncols=True, leave=True)

    def text(self) -> str:
        return ", ".join(f"{m} {self.done[m]}/{self.episodes}" for m in self.modules)

    def advance(self, module: str, n: int = 1) -> None:
        self.done[module] = self.done.get(module, 0) + n
        if module not in self.modules:
            self.modules.append(module)
        if self._bar is not None:
            self._bar.update(n)
            self._bar.set_postfix_str(self.text(), refresh=False)
        elif self.mode == "log" and time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            logger.info("%s: %s", self.desc, self.text())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "log" and self.modules:
            logger.info("%s: %s", self.desc, self.text())
            self.mode = "off"

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
