"""What every benchmark shares: the `--load` condition, the load average, optional peers.

`--load` starts one busy process per core (a Python loop that never sleeps) before the
measurements and kills exactly those processes, by PID, at the end, so that a script measures
both sides of every ratio on a machine whose every core another process wants. Without it the
machine is called quiet, which on a shared machine it may not be: the load average printed
beside every table says how busy it was.
"""

import argparse
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from types import ModuleType

BUSY_LOOP = """
import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""
"""The program of one busy process: a Python loop that keeps one core busy, and ends by itself
when the benchmark that started it is gone (killed by a signal it could not handle)."""

SETTLE_SECONDS = 1.0
"""Seconds the busy processes run before the first measurement."""


def add_load_option(parser: argparse.ArgumentParser) -> None:
    """Add `--load` to a benchmark's command line."""
    parser.add_argument(
        "--load",
        action="store_true",
        help="start one busy process per core for the whole run (killed by PID at the end)",
    )


@contextlib.contextmanager
def condition(loaded: bool) -> Iterator[str]:
    """Run the body quiet, or with one busy process per core; yield the condition's name."""
    if not loaded:
        yield "quiet (no busy process started; other work on the machine may still run)"
        return
    cores = os.cpu_count() or 1
    busy: list[subprocess.Popen[bytes]] = []
    # SIGTERM ends the benchmark through the `finally` below, which kills the busy processes.
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        for _ in range(cores):
            busy.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP]))
        time.sleep(SETTLE_SECONDS)
        pids = ", ".join(str(process.pid) for process in busy)
        yield f"loaded ({cores} busy processes, PIDs {pids})"
    finally:
        for process in busy:
            process.kill()
        for process in busy:
            process.wait()
        signal.signal(signal.SIGTERM, previous)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def load_line() -> str:
    """The load average now, and the number of CPUs, for printing beside a table."""
    one, five, fifteen = os.getloadavg()
    return (
        f"load average (1, 5, 15 min): {one:.2f}, {five:.2f}, {fifteen:.2f}; "
        f"CPUs: {os.cpu_count()}"
    )


def optional_module(name: str, extra: str = "bench") -> ModuleType | None:
    """Import an optional peer, or print why it is skipped and return None."""
    try:
        return importlib.import_module(name)
    except Exception as error:  # an installed package can fail to import in many ways
        print(
            f"skipping peer {name}: it cannot be imported ({type(error).__name__}: {error}); "
            f"install the {extra!r} extra: pip install -e '.[{extra}]'"
        )
        return None
