"""How a user mistake reads: one line (`lerobot-keyframes <command>: error: ...`), the usage, exit 2.

`Parser` is argparse with exact flag names and that first line; `unknown_flags_error` names the nearest flag;
`user_error_types` are the exceptions `main` reports as one line (exit 2) instead of a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from .flags import option_actions


def suggest(name: str, parser: argparse.ArgumentParser) -> str | None:
    """The option of `parser` closest to `name` (difflib), if any is close."""
    options = [o for o in option_actions(parser) if o.startswith("--")]
    hidden = {o for o, a in option_actions(parser).items() if a.help == argparse.SUPPRESS}
    found = difflib.get_close_matches(name, [o for o in options if o not in hidden], n=1, cutoff=0.6)
    if not found:
        found = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return found[0] if found else None


def fail(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """One line first (`prog: error: ...`), then the command's usage; exit 2."""
    sys.stderr.write(f"{parser.prog}: error: {message}\n")
    parser.print_usage(sys.stderr)
    raise SystemExit(2)


def unknown_flags_error(parser: argparse.ArgumentParser, extras: Sequence[str]) -> NoReturn:
    names = [e for e in extras if e.startswith("-")]
    if not names:
        fail(parser, f"unexpected argument(s): {' '.join(extras)}")
    flag = names[0].partition("=")[0]
    close = suggest(flag, parser)
    hint = f"; did you mean {close}?" if close else f"; see {parser.prog} --help"
    more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
    fail(parser, f"unrecognized argument {flag}{more}{hint}")


class Parser(argparse.ArgumentParser):
    """argparse with exact flag names (no abbreviations) and errors as one line first, then the usage."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            close = difflib.get_close_matches(found.group(1), re.findall(r"'([^']*)'", found.group(2)), n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        fail(self, message)


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the input or the environment is wrong (one line, exit 2), not a bug here."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from ..dataset.errors import DatasetFormatError
    from ..frames.errors import FrameDecodeError
    from ..hub.errors import HubError, transport_errors
    from ..vlm.errors import VlmError

    found: list[type[BaseException]] = [ValueError, OSError, ImportError, HubError, DatasetFormatError, VlmError,
                                        FrameDecodeError, HfHubHTTPError, OfflineModeIsEnabled, *transport_errors()]
    try:
        from ..annotate.context import AnnotationError

        found.append(AnnotationError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


def one_line(exc: BaseException) -> str:
    """The message on one line, bounded (a server's whole HTML page is not an error line); a network error
    that no step translated names the host and the fixes (`hub.errors.network_message`)."""
    from ..hub.errors import OFFLINE_FIX, network_message, transport_errors

    if isinstance(exc, transport_errors()) and type(exc).__module__ != "builtins":  # httpx, requests
        exc = RuntimeError(network_message(exc, fix=OFFLINE_FIX))  # every write translates its own: a read
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else text[:597] + "..."
