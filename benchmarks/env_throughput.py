"""CartPole throughput: `runtime.envs.cartpole.CartPole` against Gymnasium's `CartPoleVectorEnv`.

Both step N copies of CartPole-v1 with random actions drawn before the timed loop, auto-resets
included (same-step here, next-step in Gymnasium). The runtime CartPole is built with its
defaults, so from `COMPILE_MIN_ENVS` copies up it steps through its compiled function; the
compilation happens in the untimed warm-up. The peer is Gymnasium's own NumPy vector
environment, `gymnasium.envs.classic_control.cartpole.CartPoleVectorEnv`. Torch runs on one CPU
thread by default, like NumPy; `--threads` changes that, `--device cuda` adds a GPU column.

Run: `python benchmarks/env_throughput.py [--threads T] [--repeats R] [--device cuda]`.
Prints, for N = 1, 64, 1024, 16384, the steps per second of each and their ratio.
"""

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from checked_rl.runtime.envs.cartpole import CartPole

SIZES = (1, 64, 1024, 16384)
STEPS = {1: 3000, 64: 3000, 1024: 1000, 16384: 200}  # timed steps per repeat
TARGET_N, TARGET_RATIO = 16384, 3.0
WARMUP = 20


def best_seconds(run: Callable[[], None], repeats: int) -> float:
    """The fastest of `repeats` timings of `run` (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def gymnasium_steps_per_second(n: int, steps: int, repeats: int) -> float:
    """Steps per second of Gymnasium's NumPy `CartPoleVectorEnv` with `n` copies."""
    env = CartPoleVectorEnv(num_envs=n)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, size=(steps, n))
    for t in range(WARMUP):
        env.step(actions[t])

    def run() -> None:
        for t in range(steps):
            env.step(actions[t])

    return n * steps / best_seconds(run, repeats)


def torch_steps_per_second(n: int, steps: int, repeats: int, device: str) -> float:
    """Steps per second of the runtime `CartPole` with `n` copies on `device`."""
    env = CartPole(n, device=device, seed=0)
    generator = torch.Generator(device=device).manual_seed(0)
    actions = torch.randint(0, 2, (steps, n), generator=generator, device=device)
    for t in range(WARMUP):
        env.step(actions[t])

    def run() -> None:
        for t in range(steps):
            env.step(actions[t])
        if device != "cpu":
            torch.cuda.synchronize()

    return n * steps / best_seconds(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5, help="timings per size; best is kept")
    parser.add_argument("--device", default="cpu", help="an extra torch device to time, e.g. cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    extra = args.device if args.device != "cpu" else None

    header = f"{'N':>6} {'gymnasium':>14} {'torch cpu':>14} {'ratio':>7}"
    if extra:
        header += f" {'torch ' + extra:>14} {'ratio':>7}"
    print(f"CartPole-v1 steps/s (torch threads: {args.threads}, best of {args.repeats})")
    # Other processes on the machine slow both sides unevenly: print the load beside the numbers.
    print(f"load average (1, 5, 15 min): {os.getloadavg()}, CPUs: {os.cpu_count()}")
    print(header)
    ratios = {}
    for n in SIZES:
        steps = STEPS[n]
        peer = gymnasium_steps_per_second(n, steps, args.repeats)
        ours = torch_steps_per_second(n, steps, args.repeats, "cpu")
        ratios[n] = ours / peer
        line = f"{n:>6} {peer:>14,.0f} {ours:>14,.0f} {ratios[n]:>6.2f}x"
        if extra:
            fast = torch_steps_per_second(n, steps, args.repeats, extra)
            line += f" {fast:>14,.0f} {fast / peer:>6.2f}x"
        print(line, flush=True)
    verdict = "met" if ratios[TARGET_N] >= TARGET_RATIO else "NOT met"
    print(
        f"target: torch cpu >= {TARGET_RATIO:.0f}x gymnasium at N = {TARGET_N}: {verdict} "
        f"({ratios[TARGET_N]:.2f}x)"
    )


if __name__ == "__main__":
    main()
