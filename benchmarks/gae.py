"""GAE speed: `runtime.returns.gae` against a NumPy reverse loop, float32 on the CPU.

The peer is the recurrence as Stable-Baselines3's `RolloutBuffer.compute_returns_and_advantage`
runs it: one backward loop over time that carries the running advantage (`last_gae_lam` there)
across whole rows of environments. It is written here in our own words, with the same
terminated/truncated semantics as `spec.returns.gae`, and checked to agree with the runtime
before any timing.

Each size is warmed up once, then both sides are timed `REPEATS` times, alternating; the script
prints the medians and the ratio peer time / runtime time (above 1: the runtime is faster). The
runtime is timed through its public, shape-checked entry point.

Run: `python benchmarks/gae.py [--threads K]`; by default torch keeps its own number of CPU
threads (the NumPy loop always uses one).
"""

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from checked_rl.runtime.returns import gae

SHAPES = [(128, 8), (128, 1024), (2048, 64), (1024, 4096)]
"""The `[T, N]` sizes timed: two small, two large."""

REPEATS = 15
"""Timed calls per size and implementation (after one warm-up call)."""

GAMMA, LAM = 0.99, 0.95
DONE_PROBABILITY = 0.01
"""The chance that a step terminates, and separately that it is truncated."""


def numpy_reverse_loop(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """GAE over `[T, N]` arrays by one backward loop over time, carrying the last advantage."""
    keep_value = 1.0 - terminated.astype(rewards.dtype)
    keep_trace = 1.0 - (terminated | truncated).astype(rewards.dtype)
    advantages = np.zeros_like(rewards)
    running = np.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * next_values[t] * keep_value[t] - values[t]
        running = delta + gamma * lam * keep_trace[t] * running
        advantages[t] = running
    return advantages


def median_seconds(peer: Callable[[], object], ours: Callable[[], object]) -> tuple[float, float]:
    """The median wall times of `REPEATS` calls of each, after one warm-up call of each.

    The calls alternate (peer, ours, peer, ...), so that a change of machine load during the
    measurement affects both sides alike.
    """
    peer()
    ours()
    times: dict[Callable[[], object], list[float]] = {peer: [], ours: []}
    for _ in range(REPEATS):
        for fn, samples in times.items():
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return statistics.median(times[peer]), statistics.median(times[ours])


def main() -> None:
    """Time both implementations at every size and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"GAE, float32, CPU, torch threads = {torch.get_num_threads()}, median of {REPEATS}")
    # Other processes on the machine slow both sides, and torch's threads much more (when a core
    # is busy, every multi-threaded operation waits for it): print the load beside the numbers.
    print(f"load average (1, 5, 15 min): {os.getloadavg()}, CPUs: {os.cpu_count()}")
    print(f"{'T':>6} {'N':>6} {'numpy loop ms':>14} {'runtime ms':>11} {'speed-up':>9}")
    for n_steps, n_envs in SHAPES:
        shape = (n_steps, n_envs)
        rewards, values, next_values = (
            rng.standard_normal(shape).astype(np.float32) for _ in range(3)
        )
        terminated = rng.random(shape) < DONE_PROBABILITY
        truncated = rng.random(shape) < DONE_PROBABILITY
        arrays = (rewards, values, next_values, terminated, truncated)
        tensors = dict(
            zip(
                ("rewards", "values", "next_values", "terminated", "truncated"),
                (torch.from_numpy(a) for a in arrays),
                strict=True,
            )
        )
        expected = numpy_reverse_loop(*arrays, GAMMA, LAM)
        got = gae(**tensors, gamma=GAMMA, lam=LAM).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        peer, ours = median_seconds(
            lambda a=arrays: numpy_reverse_loop(*a, GAMMA, LAM),
            lambda t=tensors: gae(**t, gamma=GAMMA, lam=LAM),
        )
        print(
            f"{n_steps:>6} {n_envs:>6} {peer * 1e3:>14.3f} {ours * 1e3:>11.3f} "
            f"{peer / ours:>8.2f}x"
        )


if __name__ == "__main__":
    main()
