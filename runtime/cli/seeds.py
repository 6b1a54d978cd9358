"""`checked-rl train --seeds 0-4`: independent seeds in parallel processes, and their spread.

Each seed is a `checked-rl train --seed S --run-dir PARENT/seed-S` process with the other
options unchanged, so seed S gives exactly what a single run with `--seed S` gives. At most
`--jobs` run at once (default: the CPU cores this process may use); each writes its output to
`PARENT/seed-S.log`. At the end the parent directory holds `summary.json` (per seed: solved or
not, steps and wall time to solve, final and best return, the curve; and their aggregate) and
`seeds.png` (every seed's curve and their mean), and a table is printed.
"""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from checked_rl.runtime.cli import CLIError
from checked_rl.runtime.ppo.config import DEFAULT_ENV_ID, SEED_BOUND
from checked_rl.runtime.ppo.rundir import RunDir, default_run_dir
from checked_rl.runtime.ppo.trainlog import atomic_write_bytes

__all__ = ["MAX_SEEDS", "add_seed_options", "mean_curve", "parse_seeds", "run_seeds"]

MAX_SEEDS = 1000
"""The most seeds one `--seeds` may name."""

POLL_S = 0.1
"""Seconds between checks for finished seed processes."""

DROPPED = {"--seeds": 1, "--jobs": 1, "--run-dir": 1, "--name": 1, "--seed": 1}
"""Options of the parent's command line not passed to a seed (with their value counts)."""


def add_seed_options(parser: argparse.ArgumentParser) -> None:
    """Add `--seeds` and `--jobs` to `train`."""
    parser.add_argument("--seeds", default=None, metavar="LIST",
                        help="run these seeds in parallel processes: 0-4, or 0,3,7, or 0-2,9")
    parser.add_argument("--jobs", type=int, default=None, metavar="J",
                        help="with --seeds: processes at once (default: the CPU cores)")


def parse_seeds(text: str) -> list[int]:
    """`0-4`, `0,3,7` or a mix of both, as a sorted list without repeats.

    >>> parse_seeds("0-2,7")
    [0, 1, 2, 7]
    """
    seeds: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ValueError(f"--seeds: expected a list like 0-4 or 0,3,7, got {text!r}") from None
        if not 0 <= first <= last < SEED_BOUND:
            raise ValueError(f"--seeds: {part.strip()!r} is not a range within [0, 2^64)")
        if last - first + 1 + len(seeds) > MAX_SEEDS:
            raise ValueError(f"--seeds {text}: more than {MAX_SEEDS} seeds")
        seeds.update(range(first, last + 1))
    return sorted(seeds)


def run_seeds(args: argparse.Namespace) -> int:
    """Run every seed of `--seeds`; print the table; write `summary.json` and `seeds.png`."""
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as error:
        raise CLIError(str(error)) from None
    for option, given in (("--resume", args.resume), ("--checkpoint", args.checkpoint),
                          ("--seed", getattr(args, "seed", None))):
        if given is not None:
            raise CLIError(f"--seeds cannot be combined with {option}")
    if args.log != "off":
        raise CLIError("--seeds cannot be combined with --log (each seed has its own)")
    jobs = args.jobs if args.jobs is not None else len(os.sched_getaffinity(0))
    if jobs < 1:
        raise CLIError(f"--jobs must be a positive integer, got {jobs}")
    parent = (Path(args.run_dir) if args.run_dir
              else default_run_dir(args.env_id or DEFAULT_ENV_ID, args.name))
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CLIError(f"run directory {parent} is not writable: {error.strerror}") from None
    forwarded = _forwarded(getattr(args, "argv", []))
    print(f"run directory: {parent} ({len(seeds)} seeds, {min(jobs, len(seeds))} at once)",
          flush=True)
    codes = _run_all(seeds, jobs, parent, forwarded)
    if codes is None:
        print("checked-rl train: interrupted; each seed saved its last completed update",
              file=sys.stderr)
        return 130
    rows = [_row(parent, seed, codes[seed]) for seed in seeds]
    document = {"seeds": rows, "aggregate": _aggregate(rows)}
    atomic_write_bytes(parent / "summary.json", (json.dumps(document, indent=2) + "\n").encode())
    plot_seeds(rows, parent / "seeds.png")
    print(format_table(rows))
    print(f"summary: {parent / 'summary.json'}, plot: {parent / 'seeds.png'}")
    failed = [row for row in rows if row["exit_code"] != 0]
    if failed:
        first = failed[0]
        log = parent / f"seed-{first['seed']}.log"
        raise CLIError(f"{len(failed)} of {len(rows)} seeds failed; seed {first['seed']}: "
                       f"{first['error']} (log: {log})")
    return 0


def _forwarded(argv: list[str]) -> list[str]:
    """The parent's `train` arguments without those `DROPPED` (`--x v` and `--x=v` forms)."""
    out, skip = [], 0
    for item in argv[1:] if argv[:1] == ["train"] else argv:
        if skip:
            skip -= 1
            continue
        name = item.split("=", 1)[0]
        if name in DROPPED:
            skip = 0 if "=" in item else DROPPED[name]
            continue
        out.append(item)
    return out


def _run_all(seeds: list[int], jobs: int, parent: Path,
             forwarded: list[str]) -> dict[int, int] | None:
    """Run the seeds, `jobs` at a time; their exit codes, or None when interrupted."""
    pending = list(seeds)
    running: dict[int, subprocess.Popen[bytes]] = {}
    codes: dict[int, int] = {}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                seed = pending.pop(0)
                with (parent / f"seed-{seed}.log").open("wb") as output:
                    running[seed] = subprocess.Popen(
                        [sys.executable, "-m", "checked_rl.runtime.cli", "train", *forwarded,
                         "--seed", str(seed), "--run-dir", str(parent / f"seed-{seed}")],
                        stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    )
            time.sleep(POLL_S)
            for seed, process in list(running.items()):
                if process.poll() is not None:
                    codes[seed] = process.returncode
                    del running[seed]
                    print(f"seed {seed}: {_finished(parent, seed, process.returncode)}",
                          flush=True)
    except KeyboardInterrupt:
        for process in running.values():
            process.send_signal(signal.SIGINT)
        for process in running.values():
            process.wait()
        return None
    return codes


def _finished(parent: Path, seed: int, code: int) -> str:
    """One line on a finished seed."""
    if code != 0:
        return f"failed (exit {code}): {_last_line(parent / f'seed-{seed}.log')}"
    summary = RunDir(parent / f"seed-{seed}").read_summary()
    state = (f"solved at {summary['steps_to_solve']} steps" if summary["solved"]
             else "not solved")
    return f"{state}, final return {_number(summary['final_return'])}"


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"


def _row(parent: Path, seed: int, code: int) -> dict[str, Any]:
    """The summary of one seed's run, with its exit code (and error line when it failed)."""
    row: dict[str, Any] = {"seed": seed, "exit_code": code, "run_dir": str(parent / f"seed-{seed}")}
    summary_path = RunDir(parent / f"seed-{seed}").summary
    if summary_path.is_file():
        row.update({key: value for key, value in json.loads(summary_path.read_text()).items()
                    if key != "seed"})
    if code != 0:
        row["error"] = _last_line(parent / f"seed-{seed}.log")
    return row


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Seeds solved, and the mean and spread of the steps and seconds to solve and of the
    final returns."""
    def stats(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return {"mean": mean, "std": std, "min": min(values), "max": max(values)}

    solved = [row for row in rows if row.get("solved")]
    return {
        "seeds": len(rows),
        "solved": len(solved),
        "steps_to_solve": stats([row["steps_to_solve"] for row in solved]),
        "seconds_to_solve": stats([row["seconds_to_solve"] for row in solved]),
        "final_return": stats([row["final_return"] for row in rows
                               if row.get("final_return") is not None]),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """The per-seed table printed at the end."""
    lines = [f"{'seed':>6}  {'solved':>6}  {'steps to solve':>14}  {'s to solve':>10}  "
             f"{'final return':>12}"]
    for row in rows:
        solved = "failed" if row["exit_code"] != 0 else ("yes" if row.get("solved") else "no")
        seconds = row.get("seconds_to_solve")
        lines.append(
            f"{row['seed']:>6}  {solved:>6}  {_number(row.get('steps_to_solve')):>14}  "
            f"{'-' if seconds is None else f'{seconds:.1f}':>10}  "
            f"{_number(row.get('final_return')):>12}"
        )
    return "\n".join(lines)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def mean_curve(curves: list[tuple[list[int], list[float]]]) -> tuple[list[int], list[float]]:
    """The mean of step-indexed curves over the union of their steps; a curve that ended
    (a solved run stops early) keeps its last value, one not yet started is left out.

    >>> mean_curve([([1, 2], [10.0, 20.0]), ([2, 3], [0.0, 40.0])])
    ([1, 2, 3], [10.0, 10.0, 30.0])
    """
    steps = sorted({step for curve_steps, _ in curves for step in curve_steps})
    means = []
    for step in steps:
        values = []
        for curve_steps, curve_values in curves:
            seen = [v for s, v in zip(curve_steps, curve_values, strict=True) if s <= step]
            if seen:
                values.append(seen[-1])
        means.append(sum(values) / len(values))
    return steps, means


def plot_seeds(rows: list[dict[str, Any]], path: Path) -> None:
    """Every seed's evaluation curve (thin) and their mean (thick) into a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    curves = [(row["curve"]["steps"], row["curve"]["returns"]) for row in rows if "curve" in row]
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.subplots()
    for row, (steps, values) in zip([r for r in rows if "curve" in r], curves, strict=True):
        axes.plot(steps, values, linewidth=1, alpha=0.6, label=f"seed {row['seed']}")
    if curves:
        steps, means = mean_curve(curves)
        axes.plot(steps, means, color="black", linewidth=2.5, label="mean")
    axes.set_xlabel("environment steps")
    axes.set_ylabel("average greedy return")
    axes.set_title(f"{len(rows)} seeds")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
