"""The `checked-rl` command.

Each subcommand lives in its own module of this package and provides
`register(subparsers)`, which adds its parser and sets `handler` to a function taking the parsed
arguments and returning an exit code. Errors a user can fix are reported as one line on stderr
with exit code 2, never as a traceback or a usage block: a bad command line through
`CommandParser.error`, a bad value found later through `CLIError`, whose message `one_line`
helps to write from the exception that was caught.
"""

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

import gymnasium

import checked_rl
from checked_rl.runtime.bridge import BridgeError
from checked_rl.runtime.env_names import EnvironmentMakeError

__all__ = [
    "SESSION_ERRORS",
    "SUBCOMMAND_MODULES",
    "CLIError",
    "CommandParser",
    "build_parser",
    "main",
    "one_line",
]

SUBCOMMAND_MODULES = (
    "checked_rl.runtime.cli.check_env",
    "checked_rl.runtime.cli.train",
    "checked_rl.runtime.cli.evaluate",
    "checked_rl.runtime.cli.export",
)

SESSION_ERRORS = (
    gymnasium.error.Error, ImportError, ValueError, BridgeError, EnvironmentMakeError
)
"""What `make_session` raises for an environment a kind cannot build: an id the kind does not
provide or Gymnasium does not know, a module that does not import, spaces the contract does not
support, a bridge server that cannot make the environment, an environment whose constructor
raised (`sys.exit` included). A subcommand reports them as one
line."""


class CLIError(Exception):
    """An error in the user's input or environment, reported as one line without traceback."""


def one_line(error: BaseException) -> str:
    """`error` as one line, `Type: first line of the message`, for a `CLIError`.

    A `BridgeError` gives its summary (which names the server and its exit code) and the last
    line the server wrote to its stderr.
    """
    if isinstance(error, BridgeError):
        tail = f" (server stderr: {error.stderr_tail[-1]})" if error.stderr_tail else ""
        return error.summary + tail
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return f"{type(error).__name__}: {lines[0]}"


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit code 2.

    Options must be spelled out (no abbreviations: `--num-env` is an error, not `--num-envs`,
    whatever options are added later). Subcommand parsers are of the same class (argparse makes
    them with the parent's class), and `subcommands` holds them by name once `build_parser` has
    registered them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.subcommands: dict[str, argparse.ArgumentParser] = {}

    def error(self, message: str) -> NoReturn:
        """Report a bad command line as `PROG: error: MESSAGE`, without the usage block."""
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> CommandParser:
    """The top-level parser with every available subcommand registered."""
    parser = CommandParser(
        prog="checked-rl",
        description="Reinforcement learning checked against a readable reference.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {checked_rl.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    parser.subcommands = dict(subparsers.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: `sys.argv[1:]`), run the subcommand and return its exit code."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unrecognized = parser.parse_known_args(argv)
    args.argv = argv
    if unrecognized:  # reported by the subcommand, so the message names it
        parser.subcommands[args.command].error(
            f"unrecognized arguments: {' '.join(unrecognized)}"
        )
    restore = _interrupt_once()
    try:
        return int(args.handler(args))
    except CLIError as error:
        print(f"checked-rl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"checked-rl {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        restore()


def _interrupt_once() -> Any:
    """Make only the first Ctrl-C (SIGINT) interrupt; later ones are ignored while the command
    finishes what the first one started (the last save), so no second KeyboardInterrupt can
    break a save or print a traceback. Returns a function that restores the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    seen = []

    def handle(signum: int, frame: Any) -> None:
        if seen:
            return
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handle)
    # After an interrupt the process is on its way out: a late Ctrl-C stays ignored.
    return lambda: signal.signal(signal.SIGINT, signal.SIG_IGN if seen else previous)
