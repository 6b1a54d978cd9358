"""Classic-control throughput: the runtime twins against Gymnasium's vectorised environments.

For each of Acrobot-v1, MountainCar-v0, MountainCarContinuous-v0 and Pendulum-v1, steps N copies
with random actions drawn before the timed loop, auto-resets included (same-step in the twins,
next-step in Gymnasium), and prints the steps per second of both and their ratio. The peer is
`gymnasium.make_vec(id, N, vectorization_mode=...)`: these four ids register no vector entry
point in Gymnasium, so it is "sync", a `SyncVectorEnv` of `gym.make(id)` copies. The twins run
with their defaults (float32, torch reset noise) on one CPU thread (like NumPy); `--device cuda`
adds a GPU column. The load average is printed beside every row: other processes on the
machine slow both sides unevenly, so compare ratios measured under the same load.

Run: `python benchmarks/classic_control.py [--envs ID ...] [--sizes N ...] [--repeats R]
[--threads T] [--device cuda]`.
"""

import argparse
import os
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from checked_rl.runtime.envs.acrobot import Acrobot
from checked_rl.runtime.envs.mountain_car import MountainCar, MountainCarContinuous
from checked_rl.runtime.envs.pendulum import Pendulum

TWINS = {
    "Acrobot-v1": Acrobot,
    "MountainCar-v0": MountainCar,
    "MountainCarContinuous-v0": MountainCarContinuous,
    "Pendulum-v1": Pendulum,
}
SIZES = (1, 64, 1024, 16384)
WORK = 65536
"""Copy-steps timed per repeat (at least 2 steps, at most 2000): enough to average out a step,
few enough for Gymnasium's Python loop over 16384 copies."""
WARMUP = 3


def steps_for(n: int) -> int:
    return max(2, min(2000, WORK // n))


def best_seconds(run: Callable[[], None], repeats: int) -> float:
    """The fastest of `repeats` timings of `run` (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def random_actions(space: gym.Space, steps: int, n: int, seed: int = 0) -> np.ndarray:
    """`[steps, n, ...]` uniform actions of a `Discrete` space or a `Box` space."""
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, int(space.n), size=(steps, n))
    low, high = space.low, space.high
    return rng.uniform(low, high, size=(steps, n, *space.shape)).astype(space.dtype)


def gymnasium_steps_per_second(env_id: str, n: int, repeats: int) -> tuple[float, str]:
    """Steps per second of `gymnasium.make_vec(env_id, n)` and the vectorization mode used."""
    mode = "vector_entry_point" if gym.spec(env_id).vector_entry_point else "sync"
    env = gym.make_vec(env_id, num_envs=n, vectorization_mode=mode)
    env.reset(seed=0)
    steps = steps_for(n)
    actions = random_actions(env.single_action_space, steps + WARMUP, n)
    for t in range(WARMUP):
        env.step(actions[t])

    def run() -> None:
        for t in range(steps):
            env.step(actions[WARMUP + t])

    seconds = best_seconds(run, repeats)
    env.close()
    return n * steps / seconds, mode


def torch_steps_per_second(env_id: str, n: int, repeats: int, device: str) -> float:
    """Steps per second of the runtime twin of `env_id` with `n` copies on `device`."""
    env = TWINS[env_id](n, device=device, seed=0)
    steps = steps_for(n) * 4
    space = gym.make(env_id).action_space
    actions = torch.as_tensor(random_actions(space, steps + WARMUP, n), device=device)
    for t in range(WARMUP):
        env.step(actions[t])

    def run() -> None:
        for t in range(steps):
            env.step(actions[WARMUP + t])
        if device != "cpu":
            torch.cuda.synchronize()

    return n * steps / best_seconds(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(TWINS), choices=list(TWINS))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3, help="timings per size; best is kept")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu", help="an extra torch device to time, e.g. cuda")
    args = parser.parse_args()
    if min(args.sizes) < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--sizes, --repeats and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    extra = args.device if args.device != "cpu" else None
    print(f"steps/s, torch threads: {args.threads}, best of {args.repeats}, CPUs: {os.cpu_count()}")
    header = f"{'env':<25} {'N':>6} {'gymnasium':>12} {'torch cpu':>12} {'ratio':>8}"
    if extra:
        header += f" {'torch ' + extra:>12} {'ratio':>8}"
    print(header + "  load average (1, 5, 15 min)")
    for env_id in args.envs:
        for n in args.sizes:
            peer, mode = gymnasium_steps_per_second(env_id, n, args.repeats)
            ours = torch_steps_per_second(env_id, n, args.repeats, "cpu")
            line = f"{env_id:<25} {n:>6} {peer:>12,.0f} {ours:>12,.0f} {ours / peer:>7.1f}x"
            if extra:
                fast = torch_steps_per_second(env_id, n, args.repeats, extra)
                line += f" {fast:>12,.0f} {fast / peer:>7.1f}x"
            load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
            print(f"{line}  {load} ({mode})", flush=True)


if __name__ == "__main__":
    main()
