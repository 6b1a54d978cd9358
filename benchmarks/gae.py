"""GAE speed: `runtime.returns.gae` against a NumPy reverse loop and TorchRL, float32 on the CPU.

Peers:

- the recurrence as Stable-Baselines3's `RolloutBuffer.compute_returns_and_advantage` runs it:
  one backward loop over time that carries the running advantage (`last_gae_lam` there) across
  whole rows of environments, written here in our own words with the semantics of
  `spec.returns.gae`;
- TorchRL's `generalized_advantage_estimate` and `vec_generalized_advantage_estimate`
  (`torchrl.objectives.value.functional`, the `bench` extra; skipped with a reason when
  missing), on the same `[T, N]` tensors with `time_dim=0`, `done = terminated | truncated`.

Every peer is checked to agree with the runtime before any timing. Each size is warmed up
once, then every implementation is timed `REPEATS` times, interleaved; the script prints the
medians, the ratios (peer time / runtime time: above 1, the runtime is faster) and the
memory-bandwidth floor: the bytes GAE must read and write (three float inputs, two bool flags,
one float result per entry) over the copy bandwidth measured here (`np.copyto` of
`BANDWIDTH_BYTES`, read plus written). It also prints which path `gae` takes (the compiled
loop of `runtime.gae_loop`, or the torch scan) and what the compiled loop's first use costs in
a fresh process, with an empty cache (compiling it) and with the user's cache. Torch keeps its
own thread settings (`--threads` changes them); `--load` runs everything with one busy process
per core.

Run: `python benchmarks/gae.py [--load] [--threads K]`.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from conditions import add_load_option, condition, load_line, optional_module

from checked_rl.runtime import gae_loop
from checked_rl.runtime.returns import gae

SHAPES = [(128, 8), (128, 1024), (2048, 64), (1024, 4096)]
"""The `[T, N]` sizes timed: two small, two large."""

REPEATS = 15
"""Timed calls per size and implementation (after one warm-up call)."""

GAMMA, LAM = 0.99, 0.95
DONE_PROBABILITY = 0.01
"""The chance that a step terminates, and separately that it is truncated."""

BYTES_PER_ENTRY = 3 * 4 + 2 * 1 + 4
"""float32 rewards, values and next values and two bool flags read, one float32 written."""

BANDWIDTH_BYTES = 2**26
"""Size of the arrays copied to measure the memory bandwidth (far beyond the CPU caches)."""

VEC_MAX_BYTES = 2**31
"""TorchRL's `vec_generalized_advantage_estimate` builds `[N, T, T]` float tensors; above this
many bytes it is skipped (with the reason printed) rather than run out of memory."""


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


FIRST_USE = """
import time
from checked_rl.runtime import gae_loop
start = time.perf_counter()
gae_loop.library()
print(time.perf_counter() - start, gae_loop.unavailable_reason())
"""
"""Times the first use of the compiled loop in a fresh process (its build or its loading)."""


def first_use_seconds(cache: str | None) -> str:
    """Seconds the compiled loop's first use takes in a fresh process, with the kernel cache in
    `cache` (None: the user's cache, where it is usually built already), or why it failed."""
    env = dict(os.environ) if cache is None else os.environ | {"CHECKED_RL_KERNEL_CACHE": cache}
    result = subprocess.run(
        [sys.executable, "-c", FIRST_USE], env=env, capture_output=True, text=True, check=True
    )
    seconds, reason = result.stdout.split(maxsplit=1)
    return f"{float(seconds) * 1e3:.1f} ms" if reason.strip() == "None" else reason.strip()


def describe_path() -> str:
    """Which GAE `runtime.returns.gae` runs here, and what its first use costs."""
    if gae_loop.library() is None:
        return f"torch scan (compiled loop unavailable: {gae_loop.unavailable_reason()})"
    with tempfile.TemporaryDirectory() as empty:
        cold = first_use_seconds(empty)
    return (f"compiled loop; first use in a fresh process: {cold} with an empty cache "
            f"(compiling), {first_use_seconds(None)} with the library cached")


def copy_bandwidth() -> float:
    """Bytes per second read plus written by the best of 5 copies of `BANDWIDTH_BYTES`."""
    source = np.ones(BANDWIDTH_BYTES // 4, dtype=np.float32)
    target = np.empty_like(source)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(target, source)
        best = min(best, time.perf_counter() - start)
    return 2 * BANDWIDTH_BYTES / best


def median_seconds(runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The median wall time of `REPEATS` calls of each run, after one warm-up call of each.

    The calls are interleaved, so that a change of machine load affects every run alike.
    """
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(REPEATS):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(samples) for name, samples in times.items()}


def torchrl_runs(functional: object, tensors: dict[str, torch.Tensor]) -> dict[str, Callable]:
    """TorchRL's two GAE functions on `tensors`, as calls returning the advantages (the
    vectorised one only up to `VEC_MAX_BYTES`)."""
    done = tensors["terminated"] | tensors["truncated"]
    arguments = (
        tensors["values"], tensors["next_values"], tensors["rewards"], done, tensors["terminated"]
    )

    def call(function: Callable) -> Callable[[], torch.Tensor]:
        return lambda: function(GAMMA, LAM, *arguments, time_dim=0)[0]

    names = ["generalized_advantage_estimate", "vec_generalized_advantage_estimate"]
    n_steps, n_envs = tensors["rewards"].shape
    if n_envs * n_steps * n_steps * 4 > VEC_MAX_BYTES:
        print(f"skipping vec_generalized_advantage_estimate at [{n_steps}, {n_envs}]: its "
              f"[N, T, T] tensors would take more than {VEC_MAX_BYTES / 2**30:g} GiB")
        names.pop()
    return {name: call(getattr(functional, name)) for name in names}


def main() -> None:
    """Time every implementation at every size and print the ratios and the floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_load_option(parser)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    functional = optional_module("torchrl.objectives.value.functional")
    rng = np.random.default_rng(0)
    with condition(args.load) as name:
        bandwidth = copy_bandwidth()
        print(f"GAE, float32, CPU, {name}; torch threads = {torch.get_num_threads()}, "
              f"median of {REPEATS}; copy bandwidth {bandwidth / 1e9:.2f} GB/s")
        print(f"runtime: {describe_path()}", flush=True)
        header = f"{'T':>5} {'N':>5} {'floor ms':>9} {'runtime ms':>10} {'x floor':>7}"
        header += f" {'numpy ms':>9} {'speed-up':>8}"
        if functional is not None:
            header += f" {'torchrl ms':>10} {'speed-up':>8} {'vec ms':>9} {'speed-up':>8}"
        print(header, flush=True)
        for n_steps, n_envs in SHAPES:
            shape = (n_steps, n_envs)
            rewards, values, next_values = (
                rng.standard_normal(shape).astype(np.float32) for _ in range(3)
            )
            terminated = rng.random(shape) < DONE_PROBABILITY
            truncated = rng.random(shape) < DONE_PROBABILITY
            arrays = (rewards, values, next_values, terminated, truncated)
            names = ("rewards", "values", "next_values", "terminated", "truncated")
            tensors = {key: torch.from_numpy(a) for key, a in zip(names, arrays, strict=True)}
            runs = {
                "runtime": lambda t=tensors: gae(**t, gamma=GAMMA, lam=LAM),
                "numpy": lambda a=arrays: numpy_reverse_loop(*a, GAMMA, LAM),
            }
            if functional is not None:
                runs |= torchrl_runs(functional, tensors)
            expected = runs["runtime"]().numpy()
            for peer, run in runs.items():
                got = np.asarray(run())
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=peer)
            seconds = median_seconds(runs)
            ours = seconds["runtime"]
            floor = n_steps * n_envs * BYTES_PER_ENTRY / bandwidth
            line = f"{n_steps:>5} {n_envs:>5} {floor * 1e3:>9.3f} {ours * 1e3:>10.3f}"
            line += f" {ours / floor:>6.1f}x {seconds['numpy'] * 1e3:>9.3f}"
            line += f" {seconds['numpy'] / ours:>7.2f}x"
            if functional is not None:
                plain = seconds["generalized_advantage_estimate"]
                vec = seconds.get("vec_generalized_advantage_estimate", float("nan"))
                line += f" {plain * 1e3:>10.3f} {plain / ours:>7.2f}x"
                line += f" {vec * 1e3:>9.3f} {vec / ours:>7.2f}x"
            print(line, flush=True)
        print(load_line())


if __name__ == "__main__":
    main()
