"""How much the CLI logs: `-q` / `-v` / `-vv` taken from anywhere on the command line, one setup per run.

Third-party loggers (HTTP clients, datasets, transformers, ...) stay at WARNING unless `-vv`; off a terminal
progress bars become timestamped log lines. `warn_once` is the CLI's warning for a setting that is accepted but acts
differently here (logged once per process under the `lerobot_keyframes.cli` logger).
"""

from __future__ import annotations

import logging
import os
import sys

logger = logging.getLogger("lerobot_keyframes.cli")  # the name users see in front of the CLI's warnings

QUIET_LOGGERS = ("httpx", "httpcore", "huggingface_hub", "urllib3", "filelock", "fsspec", "datasets", "transformers",
                 "PIL", "asyncio", "openai", "vllm", "ray", "torchcodec", "matplotlib", "xgrammar")


def setup_logging(verbosity: int) -> None:
    """-q: warnings; default: this package at INFO, third parties at WARNING; -v: DEBUG here; -vv: DEBUG all.

    Off a terminal (a log file), progress bars are off (they would leave carriage returns and `[A`
    escapes; the run logs progress lines instead), huggingface_hub and datasets bars follow the same rule,
    and every line starts with the date and time, as lerobot's do."""
    own = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    others = logging.DEBUG if verbosity >= 2 else logging.WARNING
    when = "" if sys.stderr.isatty() else "%(asctime)s "
    logging.basicConfig(level=others, format=when + "%(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
                        force=True)
    logging.getLogger("lerobot_keyframes").setLevel(own)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(others)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "debug" if verbosity >= 2 else "error")
    if verbosity < 0 or not sys.stderr.isatty():
        from ..progress import MODE_ENV

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault(MODE_ENV, "off" if verbosity < 0 else "log")
    try:
        import huggingface_hub.utils as hf_utils

        if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") == "1":
            hf_utils.disable_progress_bars()
    except ImportError:  # pragma: no cover
        pass


def take_verbosity(argv: list[str]) -> tuple[int, list[str]]:
    """Take -q/-v/-vv/--quiet/--verbose from anywhere before `--` (they belong to every command)."""
    level, rest = 0, []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in ("-q", "--quiet"):
            level = -1
        elif arg == "--verbose" or (arg.startswith("-v") and set(arg[1:]) == {"v"}):
            level = max(level, 0) + (1 if arg == "--verbose" else len(arg) - 1)
        else:
            rest.append(arg)
    return level, rest


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """Log `message` as a warning the first time only (a job's re-parse does not repeat it)."""
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning("%s", message)
