"""`checked-rl train --nproc K`: data-parallel training on this machine, launched with torchrun.

The shortcut runs torchrun's own launcher (`torch.distributed.run`, what the `torchrun` command
runs) in this process, as if the user had typed

    torchrun --standalone --nproc-per-node=K --no-python -- \
        PYTHON -m checked_rl.runtime.cli train ...

with every other option of the command line passed on unchanged. The `--` matters: torchrun's
parser takes any option that abbreviates one of its own, also after the program's name, unless
the program and its arguments follow `--` (torch 2.13 refuses `--log` as ambiguous with
`--log-dir` and `--nproc` as ambiguous with `--nproc-per-node`). Each rank then joins the
process group (`join_if_launched`, `runtime.ppo.distributed.join`). torchrun's own log lines
and its failure report are left out: the failing rank prints its error itself, and this command
adds one line saying which rank failed.
"""

import argparse
import logging
import os
import sys
from typing import Any

from checked_rl.runtime.cli import CLIError

__all__ = ["NPROC_OPTION", "add_nproc_option", "join_if_launched",
           "refuse_normalization_across_ranks", "run_nproc", "torchrun_args"]

NPROC_OPTION = "--nproc"


def add_nproc_option(parser: argparse.ArgumentParser) -> None:
    """Add `--nproc K` to `checked-rl train`."""
    parser.add_argument(
        NPROC_OPTION, type=int, default=None, metavar="K",
        help="train one policy with K data-parallel processes on this machine (launches "
             "torchrun; see the distributed guide for several machines)",
    )


def torchrun_args(nproc: int, argv: list[str]) -> list[str]:
    """torchrun's command line for `checked-rl` with `argv` (without `--nproc`) on `nproc` ranks.

    >>> torchrun_args(2, ["train", "--log", "x.json"])[:4]
    ['--standalone', '--nproc-per-node=2', '--no-python', '--']
    >>> torchrun_args(2, ["train", "--log", "x.json"])[-4:]
    ['checked_rl.runtime.cli', 'train', '--log', 'x.json']
    """
    return ["--standalone", f"--nproc-per-node={nproc}", "--no-python", "--",
            sys.executable, "-m", "checked_rl.runtime.cli", *argv]


def without_nproc(argv: list[str]) -> list[str]:
    """`argv` without `--nproc K` / `--nproc=K`.

    >>> without_nproc(["train", "--nproc", "2", "--quiet", "--nproc=3"])
    ['train', '--quiet']
    """
    kept: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item == NPROC_OPTION:
            skip = True
        elif not item.startswith(NPROC_OPTION + "="):
            kept.append(item)
    return kept


def run_nproc(args: argparse.Namespace) -> int:
    """Handler of `checked-rl train --nproc K`: run torchrun, return the run's exit code."""
    from checked_rl.runtime.ppo.distributed import launched

    nproc = args.nproc
    if nproc < 1:
        raise CLIError(f"--nproc must be a positive number of processes, got {nproc}")
    if launched():
        raise CLIError("--nproc starts torchrun itself: drop it when running under torchrun")
    if args.seeds is not None:
        raise CLIError("--nproc cannot be combined with --seeds (each seed is one run)")
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    parsed = torchrun.get_args_parser().parse_args(
        torchrun_args(nproc, without_nproc(list(args.argv))))
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torchrun's default, without its warning
    _quiet_torchrun_logs()
    try:
        torchrun.run(parsed)
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        print(f"checked-rl train: rank {rank} of {nproc} failed (exit code {failure.exitcode}); "
              f"every rank stopped", file=sys.stderr)
        return failure.exitcode if failure.exitcode in (2, 130) else 1
    return 0


def _quiet_torchrun_logs() -> None:
    """torchrun's own log lines off: the ranks report for themselves."""
    manager: Any = logging.root.manager
    for name in list(manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def join_if_launched(device: Any) -> Any:
    """This rank's `DataParallel` when started by torchrun, otherwise None; a device this rank
    cannot use is a `CLIError`."""
    from checked_rl.runtime.ppo.distributed import join, launched

    if not launched():
        return None
    try:
        return join(device)
    except ValueError as error:
        raise CLIError(str(error)) from None


def refuse_normalization_across_ranks() -> None:
    """Under torchrun with more than one rank, running normalisation is refused: each rank would
    keep statistics of its own environments, and a checkpoint holds rank 0's only. Rank 0 says
    so in one line (`CLIError`); the other ranks exit with the same code without repeating it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if os.environ.get("RANK", "0") == "0":
        raise CLIError("--normalize-observations and --normalize-rewards take one rank only: "
                       "each rank would keep statistics of its own environments")
    raise SystemExit(2)
