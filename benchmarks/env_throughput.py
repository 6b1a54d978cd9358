"""CartPole throughput: `runtime.envs.cartpole.CartPole` against Gymnasium and EnvPool.

Every implementation steps N copies of CartPole-v1 with random actions drawn before the timed
loop, auto-resets included (same-step here, next-step in Gymnasium and EnvPool). Peers:
Gymnasium's own NumPy vector environment (`CartPoleVectorEnv`) and EnvPool's C++ CartPole-v1
(`envpool.make(..., env_type="gymnasium")`, its default threads; the `bench` extra, skipped
with a reason when missing). Everything runs with its defaults, as a user gets them: the
runtime `CartPole(N)` steps in NumPy below `HOST_MAX_ENVS` copies and compiled from
`COMPILE_MIN_ENVS` up (the column `engine`), and torch keeps its own thread settings
(`--threads` changes them, for comparison only). The column `compiled` is
`CartPole(N, compiled=True)` below `COMPILE_MIN_ENVS`, with the seconds its first step took
(compiling, or loading inductor's on-disk cache).

The implementations are timed in interleaved rounds (each round times every one once) and the
best round of each counts. `--load` runs everything with one busy process per core.

Run: `python benchmarks/env_throughput.py [--load] [--threads T] [--repeats R] [--device cuda]`.
"""

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from conditions import add_load_option, condition, load_line, optional_module
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from checked_rl.runtime.envs.cartpole import COMPILE_MIN_ENVS, CartPole

SIZES = (1, 64, 1024, 16384)
STEPS = {1: 3000, 64: 3000, 1024: 1000, 16384: 200}  # timed steps per round
TARGETS = {16384: 3.0, 1024: 1.5, 64: 1.0, 1: 1.0}
"""The issue's quiet targets against Gymnasium (2x at 16384 loaded)."""
WARMUP = 20

Stepper = Callable[[], None]


def gymnasium_run(n: int, steps: int) -> Stepper:
    """`steps` steps of Gymnasium's NumPy `CartPoleVectorEnv` with `n` copies."""
    env = CartPoleVectorEnv(num_envs=n)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, size=(steps, n))
    for t in range(WARMUP):
        env.step(actions[t])

    def run() -> None:
        for t in range(steps):
            env.step(actions[t])

    return run


def envpool_run(envpool: object, n: int, steps: int) -> Stepper:
    """`steps` steps of EnvPool's CartPole-v1 with `n` copies, its default settings."""
    env = envpool.make("CartPole-v1", env_type="gymnasium", num_envs=n, seed=0)
    env.reset()
    actions = np.random.default_rng(0).integers(0, 2, size=(steps, n)).astype(np.int32)
    for t in range(WARMUP):
        env.step(actions[t])

    def run() -> None:
        for t in range(steps):
            env.step(actions[t])

    return run


def torch_run(
    n: int, steps: int, device: str, **options: object
) -> tuple[Stepper, float, str]:
    """`steps` steps of the runtime `CartPole(n, **options)`, the seconds of its first step, and
    the engine that stepped."""
    env = CartPole(n, device=device, seed=0, **options)
    generator = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(0, 2, (steps, n), generator=generator, device=device)
    start = time.perf_counter()
    env.step(actions[0])
    first = time.perf_counter() - start
    for t in range(WARMUP):
        env.step(actions[t])

    def run() -> None:
        for t in range(steps):
            env.step(actions[t])
        if device != "cpu":
            torch.cuda.synchronize()

    return run, first, env.engine


def best_rates(runs: dict[str, Stepper], items: int, repeats: int) -> dict[str, float]:
    """Items per second of each run: the best of `repeats` interleaved rounds."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: items / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's own)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; the best counts")
    parser.add_argument("--device", default="cpu", help="an extra torch device to time, e.g. cuda")
    add_load_option(parser)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    extra = args.device if args.device != "cpu" else None
    # EnvPool's spaces warn on creation that Gymnasium lowers their bounds to float32.
    warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32")
    envpool = optional_module("envpool")
    with condition(args.load) as name:
        print(f"CartPole-v1 steps/s, {name}; torch threads: {torch.get_num_threads()}, "
              f"best of {args.repeats} interleaved rounds")
        header = f"{'N':>6} {'gymnasium':>12} {'envpool':>12} {'engine':>8} {'torch cpu':>12}"
        header += f" {'x gym':>6}"
        header += f" {'x envpool':>9} {'compiled':>12} {'x gym':>6} {'first s':>7}"
        print(header + (f" {'torch ' + extra:>12} {'x gym':>6}" if extra else ""), flush=True)
        ratios = {}
        for n in SIZES:
            steps = STEPS[n]
            runs = {"gymnasium": gymnasium_run(n, steps)}
            if envpool is not None:
                runs["envpool"] = envpool_run(envpool, n, steps)
            runs["torch"], _, engine = torch_run(n, steps, "cpu")
            first = None
            if n < COMPILE_MIN_ENVS:
                runs["compiled"], first, _ = torch_run(n, steps, "cpu", compiled=True)
            if extra:
                runs[extra], _, _ = torch_run(n, steps, extra)
            rates = best_rates(runs, n * steps, args.repeats)
            gym = rates["gymnasium"]
            ratios[n] = rates["torch"] / gym
            pool = rates.get("envpool")
            line = f"{n:>6} {gym:>12,.0f} {pool or float('nan'):>12,.0f} {engine:>8}"
            line += f" {rates['torch']:>12,.0f}"
            line += f" {ratios[n]:>5.2f}x {rates['torch'] / pool if pool else float('nan'):>8.2f}x"
            if first is not None:
                compiled = rates["compiled"]
                line += f" {compiled:>12,.0f} {compiled / gym:>5.2f}x {first:>7.2f}"
            else:
                line += f" {'-':>12} {'-':>6} {'-':>7}"
            if extra:
                line += f" {rates[extra]:>12,.0f} {rates[extra] / gym:>5.2f}x"
            print(line, flush=True)
        print(load_line())
        for n, target in TARGETS.items():
            target = 2.0 if args.load and n == 16384 else target
            if args.load and n != 16384:
                continue
            verdict = "met" if ratios[n] >= target else "NOT met"
            print(f"target: torch cpu (defaults) >= {target:g}x gymnasium at N = {n}: {verdict} "
                  f"({ratios[n]:.2f}x)")


if __name__ == "__main__":
    main()
