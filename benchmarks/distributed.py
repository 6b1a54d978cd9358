"""Data-parallel PPO on CartPole-v1: 1 and 2 ranks under torchrun against the plain trainer.

Three ways to train the default preset with the same global batch (64 environments x 16 steps
per update), each to solved (an average greedy return of 475 over 20 held-out episodes):

- `plain`: the single-process trainer, no torchrun (the named peer of every ratio);
- `torchrun x1`: the same under `torchrun --nproc-per-node=1` (one gloo rank);
- `torchrun x2`: two gloo ranks of 32 environments each.

For each: environment steps per second of training (evaluation left out), the training time
to solve, and the share of rank 0's training time spent in the gradient all-reduce and in all
collectives together (waiting for the other rank included: a collective is where the ranks
meet). Every rank is a process of its own with one torch thread. On a 2-core machine two ranks
compete with each other and with everything else, so compare the ratios with the load average
printed beside them. `--load` adds one busy process per core.

Run: `python benchmarks/distributed.py [--load] [--seeds 0 1 2] [--device cuda]` (on CUDA the
backend is NCCL with one rank per device). The time to solve varies a lot with the random
streams (the default preset solves seeds 0-9 in 8 updates with its own learner seed, and in
14-84 updates with others), so compare it over several seeds.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from conditions import add_load_option, condition, load_line

from checked_rl.runtime.ppo.config import preset
from checked_rl.runtime.ppo.distributed import GRADIENTS, join
from checked_rl.runtime.ppo.train import train

GLOBAL_ENVS = 64
"""Training environments over all ranks (the default preset's `num_envs`)."""
RANKS = (1, 2)


def worker(out: str, seed: int, world_size: int, device: str) -> None:
    """One rank: train the default preset with `GLOBAL_ENVS / world_size` environments."""
    parallel = join(device)
    try:
        result = train(preset("default", seed=seed, num_envs=GLOBAL_ENVS // world_size),
                       device=parallel.device, parallel=parallel)
    finally:
        parallel.close()
    if parallel.rank == 0:
        Path(out).write_text(json.dumps({
            "solved": result.solved, "env_steps": result.env_steps,
            "train_seconds": result.train_seconds,
            "gradient_seconds": parallel.seconds.get(GRADIENTS, 0.0),
            "collective_seconds": sum(parallel.seconds.values()),
        }))


def plain(seed: int, device: str) -> dict[str, float]:
    """The single-process trainer."""
    result = train(preset("default", seed=seed), device=device)
    return {"solved": result.solved, "env_steps": result.env_steps,
            "train_seconds": result.train_seconds, "gradient_seconds": 0.0,
            "collective_seconds": 0.0}


def launched(seed: int, world_size: int, device: str) -> dict[str, float]:
    """`world_size` ranks under torchrun; rank 0's figures."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={world_size}", "--no-python", "--", sys.executable,
                   __file__, "--worker", str(out), "--seed", str(seed),
                   "--world-size", str(world_size), "--device", device]
        environment = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(command, check=True, env=environment, capture_output=True)
        return json.loads(out.read_text())


def table(seeds: list[int], device: str) -> None:
    rows: dict[str, list[dict[str, float]]] = {"plain": []}
    rows.update((f"torchrun x{world_size}", []) for world_size in RANKS)
    for seed in seeds:  # interleaved, so that a change of load hits every row alike
        rows["plain"].append(plain(seed, device))
        for world_size in RANKS:
            rows[f"torchrun x{world_size}"].append(launched(seed, world_size, device))
    peer = statistics.median(r["env_steps"] / r["train_seconds"] for r in rows["plain"])
    print(f"{'run':<12} {'solved':>6} {'steps/s':>8} {'vs plain':>8} {'s to solve':>10} "
          f"{'all-reduce':>10} {'collectives':>11}")
    for name, results in rows.items():
        rate = statistics.median(r["env_steps"] / r["train_seconds"] for r in results)
        seconds = statistics.median(r["train_seconds"] for r in results)
        gradient = statistics.median(r["gradient_seconds"] / r["train_seconds"] for r in results)
        collective = statistics.median(
            r["collective_seconds"] / r["train_seconds"] for r in results)
        solved = sum(bool(r["solved"]) for r in results)
        print(f"{name:<12} {solved:>3}/{len(results):<2} {rate:>8.0f} {rate / peer:>7.2f}x "
              f"{seconds:>10.1f} {gradient:>9.1%} {collective:>11.1%}")
    print("(medians over seeds; steps/s and seconds count training only, evaluation left out;")
    print(" all-reduce and collectives: share of rank 0's training time)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_option(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--device", default="cpu",
                        help="cpu (gloo) or cuda (NCCL, one rank per device; needs 2 GPUs for "
                             "2 ranks)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--world-size", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.seed, args.world_size, args.device)
        return
    with condition(args.load) as name:
        print(f"PPO on CartPole-v1, default preset, {GLOBAL_ENVS} environments over all ranks, "
              f"{args.device}; {name}")
        print(load_line())
        table(args.seeds, args.device)
        print(load_line())


if __name__ == "__main__":
    main()
