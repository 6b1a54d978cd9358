"""Time to solve classic-control tasks: this package's preset for each id against Stable-Baselines3.

Tasks (issue 12): Pendulum-v1 to -200, Acrobot-v1 to -100 (targets: every seed solves, and our
median time at most half the peer's), MountainCarContinuous-v0 to 90 (reported, no target).
Solved means an average greedy return of at least the threshold over 20 held-out episodes.

Both learners are evaluated by the same code (`runtime.ppo.evaluate.evaluate` on a torch
session of 20 environments seeded `seed + 1_000_000 + j`, episodes cut at the registry's
`max_episode_steps`) on the same schedule: every `K` environment steps, `K` being our preset's
`batch_size x eval_every`. Stable-Baselines3 changes its policy only after a rollout of
`n_envs x n_steps` steps, and greedy evaluation on fixed seeds is deterministic, so evaluating
it at the first rollout start at or after each multiple of `K` gives what evaluating it at the
multiple would (exactly so when one of `K` and the rollout size divides the other, as for every
task here). The time reported is training wall time up to the evaluation that first reaches the
threshold, every evaluation's time left out for both. A seed not solved when its wall time
(evaluations included, for both) passes `--budget` seconds, or when it has used its step budget,
is stopped and counted unsolved: its row says so and the medians count it at the budget.

Ours: `runtime.ppo.presets.ENV_PRESETS[id]` with the seed, torch session, its config's threads
(1). The peer: Stable-Baselines3's `PPO` with the RL-Zoo hyperparameters for the id (file
`hyperparams/ppo.yml` of rl-baselines3-zoo, commit 208b6fd, listed in `PEERS`), on its own
`DummyVecEnv` of Gymnasium environments, with `VecNormalize` (observations and rewards, its
gamma) where the zoo says `normalize: true`; evaluation feeds it observations normalised with
its running statistics, as the zoo's own evaluation does. It runs with `--peer-threads` torch
threads (torch's default unless given; the runs in the note used 1, as ours does: on a
2-core machine shared with a load of 10-25, two spinning threads per process stall).

Run: `python benchmarks/continuous_control.py [--load] [--tasks Acrobot-v1 ...] [--seeds 0 1 2 3 4]
[--budget S] [--peer-threads 1]` (needs the `bench` extra; without Stable-Baselines3 only ours
runs, and the script says why).
"""

import argparse
import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from conditions import add_load_option, condition, load_line, optional_module
from torch import Tensor

from checked_rl.runtime.ppo.evaluate import evaluate
from checked_rl.runtime.ppo.presets import ENV_PRESETS
from checked_rl.runtime.ppo.train import train
from checked_rl.runtime.sessions import make_session

DEFAULT_THREADS = torch.get_num_threads()
"""Torch's own thread count in this process, before anything sets it: what an SB3 user gets."""

TARGETS = {"Pendulum-v1": 0.5, "Acrobot-v1": 0.5, "MountainCarContinuous-v0": None}
"""Issue 12's target for the ratio of median times (None: report only)."""


@dataclass(frozen=True)
class Peer:
    """RL-Zoo's PPO settings for one id (rl-baselines3-zoo hyperparams/ppo.yml, commit 208b6fd)."""

    timesteps: int
    """The zoo's `n_timesteps`: the peer's step budget."""
    normalize: bool
    """The zoo's `normalize: true`: `VecNormalize` of observations and rewards."""
    kwargs: dict[str, Any]
    """The rest, as `stable_baselines3.PPO` takes them (its defaults for what the zoo omits)."""


PEERS = {
    "Acrobot-v1": Peer(1_000_000, True, dict(
        n_envs=16, n_steps=256, gae_lambda=0.94, gamma=0.99, n_epochs=4, ent_coef=0.0)),
    "Pendulum-v1": Peer(100_000, False, dict(
        n_envs=4, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
        learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4)),
    "MountainCarContinuous-v0": Peer(20_000, True, dict(
        n_envs=1, batch_size=256, n_steps=8, gamma=0.9999, learning_rate=7.77e-5,
        ent_coef=0.00429, clip_range=0.1, n_epochs=10, gae_lambda=0.9, max_grad_norm=5.0,
        vf_coef=0.19, use_sde=True, policy_kwargs=dict(log_std_init=-3.29, ortho_init=False))),
}


@dataclass
class Row:
    """One learner on one seed."""

    solved: bool
    steps: int
    seconds: float
    """Training seconds to solve, or wall seconds when stopped unsolved."""
    why: str = ""


class _OutOfTime(Exception):
    """Raised from the evaluation callback when a seed passes its budget."""

    def __init__(self, steps: int) -> None:
        super().__init__(steps)
        self.steps = steps


def interval(env_id: str) -> int:
    """K: environment steps between evaluations, for both learners."""
    config = ENV_PRESETS[env_id].config
    return config.batch_size * config.eval_every


def ours(env_id: str, seed: int, budget: float) -> Row:
    """Our preset for `env_id` on `seed`."""
    config = ENV_PRESETS[env_id].config
    started = time.perf_counter()

    def check(steps: int, mean: float) -> None:
        if mean < config.solved_return and time.perf_counter() - started > budget:
            raise _OutOfTime(steps)

    try:
        result = train(dataclasses.replace(config, seed=seed), kind="torch", env_id=env_id,
                       on_evaluation=check)
    except _OutOfTime as stop:
        return Row(False, stop.steps, time.perf_counter() - started, "time budget")
    if not result.solved:
        return Row(False, result.env_steps, result.train_seconds, "step budget")
    return Row(True, result.env_steps, result.train_seconds)


def stable_baselines3(env_id: str, seed: int, budget: float, threads: int) -> Row:
    """Stable-Baselines3 PPO with RL-Zoo's settings for `env_id` on `seed`."""
    torch.set_num_threads(threads)  # our `train` set its config's threads
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    peer = PEERS[env_id]
    kwargs = dict(peer.kwargs)
    n_envs = kwargs.pop("n_envs")
    config = dataclasses.replace(ENV_PRESETS[env_id].config, seed=seed)
    every = interval(env_id)
    eval_session = make_session("torch", env_id, num_envs=config.eval_episodes)
    envs = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if peer.normalize:
        envs = VecNormalize(envs, gamma=kwargs.get("gamma", 0.99))

    class Evaluate(BaseCallback):
        """Evaluate when a rollout starts (after the previous update); stop once solved."""

        def __init__(self) -> None:
            super().__init__()
            self.solved = self.out_of_time = False
            self.eval_seconds = self.train_seconds = self.started = 0.0
            self.steps = self.evaluated = 0

        def _on_training_start(self) -> None:
            self.started = time.perf_counter()

        def _on_rollout_start(self) -> None:
            steps = self.num_timesteps
            if steps // every <= self.evaluated or self.solved or self.out_of_time:
                return
            self.evaluated = steps // every
            tick = time.perf_counter()
            self.train_seconds = tick - self.started - self.eval_seconds
            self.steps = steps
            returns = evaluate(eval_session, _sb3_policy(self.model, envs if peer.normalize
                                                          else None),
                               seed=config.eval_seed,
                               max_episode_steps=config.eval_max_episode_steps)
            self.eval_seconds += time.perf_counter() - tick
            self.solved = float(returns.mean()) >= config.solved_return
            self.out_of_time = not self.solved and time.perf_counter() - self.started > budget

        def _on_step(self) -> bool:
            return not (self.solved or self.out_of_time)

    model = PPO("MlpPolicy", envs, seed=seed, device="cpu", verbose=0, **kwargs)
    callback = Evaluate()
    model.learn(total_timesteps=peer.timesteps, callback=callback)
    eval_session.close()
    envs.close()
    if callback.solved:
        return Row(True, callback.steps, callback.train_seconds)
    wall = time.perf_counter() - callback.started
    return Row(False, model.num_timesteps, wall,
               "time budget" if callback.out_of_time else "step budget")


def _sb3_policy(model: Any, normalizer: Any) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """Stable-Baselines3's policy as observations -> (greedy scores, values), for `evaluate`:
    logits of a categorical policy, the mean of a Gaussian one; observations normalised with the
    peer's running statistics when it trains with `VecNormalize`."""
    policy = model.policy

    def forward(observations: Tensor) -> tuple[Tensor, Tensor]:
        inputs = observations
        if normalizer is not None:
            array = normalizer.normalize_obs(observations.cpu().numpy().astype(np.float32))
            inputs = torch.as_tensor(array)
        distribution = policy.get_distribution(inputs).distribution
        scores = getattr(distribution, "logits", None)
        if scores is None:
            scores = distribution.mean
        return scores, policy.predict_values(inputs)[:, 0]

    shape = getattr(model.action_space, "shape", ())
    if shape:  # a Box: `evaluate` steps the head's greedy action, the Gaussian's mean
        from checked_rl.runtime.ppo.heads import GaussianHead

        forward.head = GaussianHead(tuple(shape))  # type: ignore[attr-defined]
    return forward


def _cell(row: Row) -> str:
    state = "solved" if row.solved else f"NOT solved ({row.why})"
    return f"{state} {row.steps:>7} steps {row.seconds:7.2f}s"


def _median(rows: list[Row], budget: float) -> float:
    """Median seconds, an unsolved seed counted at the budget (at least its own time)."""
    return statistics.median(r.seconds if r.solved else max(budget, r.seconds) for r in rows)


def run_task(env_id: str, seeds: list[int], budget: float, peer: int, mine: bool = True) -> None:
    """Both learners on every seed of one task; prints a row per seed and the summary."""
    config = ENV_PRESETS[env_id].config
    print(f"\n{env_id}: solved at {config.solved_return:g} on {config.eval_episodes} held-out "
          f"episodes (cut at {config.eval_max_episode_steps} steps), evaluation every "
          f"{interval(env_id)} environment steps; budgets: {budget:g} s per seed, "
          f"{config.batch_size * config.updates} steps (ours), {PEERS[env_id].timesteps} steps "
          f"(Stable-Baselines3)")
    print(f"{'seed':>4}  {'checked-rl preset':>42}  {'Stable-Baselines3 (RL Zoo)':>42}")
    rows = []
    for seed in seeds:
        own = ours(env_id, seed, budget) if mine else Row(False, 0, math.nan, "not run")
        theirs = (stable_baselines3(env_id, seed, budget, peer) if peer
                  else Row(False, 0, math.nan, "not run"))
        rows.append((own, theirs))
        print(f"{seed:>4}  {_cell(own):>42}  {_cell(theirs):>42}", flush=True)
    mine_median = _median([r[0] for r in rows], budget) if mine else math.nan
    theirs_median = _median([r[1] for r in rows], budget) if peer else math.nan
    ratio = mine_median / theirs_median if peer else math.nan
    target = TARGETS[env_id]
    print(f"median  {mine_median:>40.2f}s  {theirs_median:>41.2f}s")
    print(f"solved: checked-rl {sum(r[0].solved for r in rows)}/{len(rows)}, "
          f"Stable-Baselines3 {sum(r[1].solved for r in rows)}/{len(rows)}")
    print(f"ratio checked-rl / Stable-Baselines3 median time to solve: {ratio:.3f} "
          f"({'target <= ' + format(target, 'g') if target else 'no target'})")
    print(load_line(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=float, default=600.0,
                        help="wall seconds per seed and learner before it counts as unsolved")
    parser.add_argument("--peer-threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch threads of Stable-Baselines3 (default: torch's own, "
                             f"{DEFAULT_THREADS} here; 1 on a machine with more runnable "
                             f"processes than cores, where spinning thread pools stall)")
    parser.add_argument("--learners", nargs="+", default=["ours", "peer"],
                        choices=["ours", "peer"], help="run only these (default: both)")
    add_load_option(parser)
    args = parser.parse_args()
    peer = 0
    if "peer" in args.learners and optional_module("stable_baselines3") is not None:
        peer = args.peer_threads
    with condition(args.load) as setting:
        print(f"{setting}; training wall time only (evaluations left out for both); torch "
              f"threads: ours 1 (its config), Stable-Baselines3 {args.peer_threads}")
        print(load_line())
        for env_id in args.tasks:
            run_task(env_id, args.seeds, args.budget, peer, "ours" in args.learners)


if __name__ == "__main__":
    main()
