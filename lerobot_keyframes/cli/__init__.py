"""`lerobot-keyframes`: a thin command line over the library. Each command parses flags and calls one function.

One grammar for every command (lerobot-annotate's): `--flag_name=value` with underscores, booleans as `--x`,
`--x=true` or `--x=false`, lists as `a,b` or `[a, b]`, episode lists with ranges (`0-2,5`), `--config_path`
for a YAML/JSON config file. A user mistake prints one line (`lerobot-keyframes <command>: error: ...`) and
exits 2; `-v` adds the traceback. `-q` / `-v` / `-vv` set how much is logged; third-party HTTP loggers stay
at WARNING unless `-vv`.

Layout: one module per command family, each with `add_parser(sub)` and its runners (`offline`: sample,
tiny-model, demo; `dataset`: info, validate; `annotate`; `keyframes`; `hub`: push, job, merge; `review`:
review, review-apply; `evaluate/cli.py` beside its library), and the grammar they share: `values` (flag values), `flags`
(dataclass -> flags), `config_file` (--config_path), `errors` (one-line errors, exit codes), `logs` (-q/-v).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports
from .config_file import apply_config_file, config_path_in
from .errors import Parser, fail, one_line, unknown_flags_error, user_error_types
from .flags import normalize_bools
from .logs import logger, setup_logging, take_verbosity

# The modules whose `add_parser(sub)` registers commands, in the order `--help` lists them.
COMMAND_MODULES = (
    ".offline",  # sample, tiny-model, demo
    ".dataset",  # info, validate
    ".annotate",
    ".keyframes",
    ".hub",  # push, job, merge
    ".review",  # review, review-apply
    "..evaluate.cli",  # eval
)

_EXPORTS = {  # module -> the public names it defines
    ".annotate": "annotate_configs_from_args",
    ".preflight": "check_model check_source preflight probe_openai_server",
    ".logs": "warn_once",
}
__getattr__, __dir__, _lazy = lazy_exports(__name__, _EXPORTS, globals())
__all__ = sorted([*_lazy, "build_parser", "main", "parse"])
if TYPE_CHECKING:
    from .annotate import annotate_configs_from_args  # noqa: F401
    from .logs import warn_once  # noqa: F401
    from .preflight import check_model, check_source, preflight, probe_openai_server  # noqa: F401


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(
        prog="lerobot-keyframes",
        description="Exact keyframes and grounded language for LeRobot v3 datasets.",
    )
    parser.add_argument("--version", action="version", version=f"lerobot_keyframes {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging, tracebacks on errors (-vv: debug, HTTP requests too); also after COMMAND")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress display")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        add_parser: Callable[[argparse._SubParsersAction], None] = importlib.import_module(module, __name__).add_parser
        add_parser(sub)
    return parser


def _command_index(argv: Sequence[str], choices: Sequence[str]) -> int | None:
    for i, arg in enumerate(argv):
        if arg in choices:
            return i
        if not arg.startswith("-"):
            return None
    return None


def parse(argv: Sequence[str], verbosity: int = 0) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    """Parsed arguments (booleans normalized, `--config_path` applied) and the parser of the command.

    A mistake exits 2 with one line (and the usage of the command)."""
    parser = build_parser()
    argv = list(argv)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    at = _command_index(argv, list(commands))
    command_parser = commands[argv[at]] if at is not None else parser
    try:
        if at is not None:
            extend = command_parser.get_default("extend_parser")  # flags that depend on the command line itself
            if extend is not None:
                extend(command_parser, argv[at + 1 :])
            argv = argv[: at + 1] + normalize_bools(command_parser, argv[at + 1 :])
            path = config_path_in(argv[at + 1 :])
            if path is not None:
                apply_config_file(command_parser, path)
        args, extras = parser.parse_known_args(argv)
    except user_error_types() as exc:
        if verbosity > 0:
            logger.exception("reading the arguments")
        fail(command_parser, one_line(exc))
    if extras:
        unknown_flags_error(command_parser, extras)
    args.argv = argv
    args.verbose = verbosity
    return args, command_parser


def main(argv: Sequence[str] | None = None) -> int:
    """The `lerobot-keyframes` console script: parse, run the command, map user errors to one line and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbosity, argv = take_verbosity(argv)
    setup_logging(verbosity)
    args, command_parser = parse(argv, verbosity)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except user_error_types() as exc:
        if verbosity > 0:
            import traceback

            traceback.print_exc()
        print(f"{command_parser.prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
