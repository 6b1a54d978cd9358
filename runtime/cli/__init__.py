"""The `checked-rl` command.

Each subcommand lives in its own module of this package and provides
`register(subparsers)`, which adds its parser and sets `handler` to a function taking the parsed
arguments and returning an exit code. Errors a user can fix are reported as one line on stderr
with a non-zero exit code, never as a traceback.
"""

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMAND_MODULES = ("checked_rl.runtime.cli.check_env", "checked_rl.runtime.cli.train")


class CLIError(Exception):
    """An error in the user's input or environment, reported as one line without traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="checked-rl",
        description="Reinforcement learning checked against a readable reference.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: `sys.argv[1:]`), run the subcommand and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except CLIError as error:
        print(f"checked-rl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"checked-rl {args.command}: interrupted", file=sys.stderr)
        return 130
