"""Time to solve CartPole-v1: this package's default PPO preset against Stable-Baselines3's PPO.

Solved means an average greedy return of at least 475 over 20 held-out evaluation episodes.
Both learners are evaluated by the same code (`runtime.ppo.evaluate.evaluate` on a torch
session of 20 CartPole-v1 environments seeded `seed + 1_000_000 + j`) on the same schedule:
every `EVAL_INTERVAL` environment steps, after the update that used them. The time reported is
training wall time up to the evaluation that first reaches 475, with every evaluation's time
left out for both. Each runs with the threads a user gets: ours with its config's `threads`
(1 by default, set by `train`), Stable-Baselines3 with torch's own default, restored before
each of its runs. `--load` runs everything with one busy process per core.

Stable-Baselines3 gets a wall-time budget as well as its step budget: `--peer-seconds` of
training time per seed (`PEER_SECONDS` by default; under load, with its default of a thread per
core, a seed has taken longer than 400 s). A run stopped there is printed as `cut`, its time as
`>=` the budget: a time to solve of at least that much, counted as such in its median, which
makes the printed ratio an upper bound (`<=`) on ours over its true median.

The peer is Stable-Baselines3's `PPO` with the RL-Zoo hyperparameters for CartPole-v1 (file
`hyperparams/ppo.yml` of rl-baselines3-zoo): 8 environments, n_steps 32, batch 256, gae_lambda
0.8, gamma 0.98, 20 epochs, ent_coef 0, learning rate and clip range both linear from 1e-3
and 0.2 to 0, its default MlpPolicy (64-64 tanh, separate actor and critic), on its own
`DummyVecEnv` of Gymnasium CartPole-v1 environments.

Run: `python benchmarks/ppo_cartpole.py [--load] [--seeds 0 1 2 3 4] [--peer-seconds S]`
(needs the `bench`
extra; without Stable-Baselines3 only ours runs, and the script says why).
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from conditions import add_load_option, condition, load_line, optional_module
from torch import Tensor

from checked_rl.runtime.ppo.config import preset
from checked_rl.runtime.ppo.evaluate import evaluate
from checked_rl.runtime.ppo.train import train
from checked_rl.runtime.sessions import make_session

OURS = preset("default")
EVAL_INTERVAL = OURS.batch_size * OURS.eval_every
"""Environment steps between evaluations, for both learners."""
SB3_BUDGET = 100_000
"""RL-Zoo CartPole-v1 `n_timesteps`; its linear schedules run over this many steps. Ours runs at
most `updates` x `batch_size` steps, its own schedule."""
SOLVED = OURS.solved_return
EVAL_EPISODES = OURS.eval_episodes
SB3_ENVS, SB3_STEPS = 8, 32
"""RL-Zoo CartPole-v1: environments and steps per environment per rollout."""
PEER_SECONDS = 120.0
"""Stable-Baselines3's default budget of training seconds per seed: eight times its median time
to solve on the quiet machine of docs/guides/performance.md (15 s)."""
DEFAULT_THREADS = torch.get_num_threads()
"""Torch's own thread count in this process, before anything sets it: what an SB3 user gets."""


Row = tuple[bool, int, float, bool]
"""(solved, environment steps, training seconds, cut: stopped by the wall-time budget)."""


def ours(seed: int) -> Row:
    """The row of the default preset."""
    result = train(preset("default", seed=seed), kind="torch")
    return result.solved, result.env_steps, result.train_seconds, False


def stable_baselines3(seed: int, budget_seconds: float) -> Row:
    """The row of Stable-Baselines3 PPO with RL-Zoo settings, stopped after `budget_seconds`
    of training time if not solved by then."""
    torch.set_num_threads(DEFAULT_THREADS)  # our `train` set its config's threads
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    eval_session = make_session("torch", num_envs=EVAL_EPISODES)
    eval_seed = preset("default", seed=seed).eval_seed

    class Evaluate(BaseCallback):
        """Evaluate when a rollout starts (after the previous update); stop once solved."""

        def __init__(self) -> None:
            super().__init__()
            self.solved = False
            self.eval_seconds = 0.0
            self.train_seconds = 0.0
            self.started = 0.0
            self.steps = 0
            self.cut = False

        def _on_training_start(self) -> None:
            self.started = time.perf_counter()

        def _on_rollout_start(self) -> None:
            steps = self.num_timesteps
            if steps == 0 or steps % EVAL_INTERVAL or self.solved:
                return
            tick = time.perf_counter()
            self.train_seconds = tick - self.started - self.eval_seconds
            self.steps = steps
            returns = evaluate(eval_session, _sb3_policy(self.model.policy), seed=eval_seed,
                               max_episode_steps=OURS.eval_max_episode_steps)
            self.eval_seconds += time.perf_counter() - tick
            self.solved = float(returns.mean()) >= SOLVED

        def _on_step(self) -> bool:
            spent = time.perf_counter() - self.started - self.eval_seconds
            self.cut = not self.solved and spent > budget_seconds
            return not (self.solved or self.cut)

    def linear(start: float) -> Callable[[float], float]:
        return lambda remaining: remaining * start

    envs = make_vec_env("CartPole-v1", n_envs=SB3_ENVS, seed=seed)
    model = PPO(
        "MlpPolicy", envs, n_steps=SB3_STEPS, batch_size=256, gae_lambda=0.8, gamma=0.98,
        n_epochs=20, ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2),
        seed=seed, device="cpu", verbose=0,
    )
    callback = Evaluate()
    model.learn(total_timesteps=SB3_BUDGET, callback=callback)
    eval_session.close()
    envs.close()
    if not callback.solved:
        spent = time.perf_counter() - callback.started - callback.eval_seconds
        return False, model.num_timesteps, spent, callback.cut
    return True, callback.steps, callback.train_seconds, False


def _sb3_policy(policy: object) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """Stable-Baselines3's policy as observations -> (logits, values), for `evaluate`."""

    def forward(observations: Tensor) -> tuple[Tensor, Tensor]:
        distribution = policy.get_distribution(observations)
        return distribution.distribution.logits, policy.predict_values(observations)[:, 0]

    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--peer-seconds", type=float, default=PEER_SECONDS,
        help=f"Stable-Baselines3's training seconds per seed before it is cut (default "
        f"{PEER_SECONDS:g})",
    )
    add_load_option(parser)
    args = parser.parse_args()
    if args.peer_seconds <= 0:
        parser.error(f"--peer-seconds must be positive, got {args.peer_seconds:g}")
    peer = optional_module("stable_baselines3") is not None
    with condition(args.load) as setting:
        print(f"{setting}; evaluation every {EVAL_INTERVAL} environment steps on "
              f"{EVAL_EPISODES} held-out episodes; solved at {SOLVED:g}; budgets "
              f"{OURS.batch_size * OURS.updates} (ours) and {SB3_BUDGET} steps; training wall "
              f"time only; torch threads: ours {OURS.threads}, Stable-Baselines3 "
              f"{DEFAULT_THREADS}; "
              f"Stable-Baselines3 cut after {args.peer_seconds:g} s of training per seed")
        print(f"{'seed':>4}  {'checked-rl default':>28}  {'Stable-Baselines3 (RL Zoo)':>28}")
        rows = []
        for seed in args.seeds:
            ours_row = ours(seed)
            peer_row = (
                stable_baselines3(seed, args.peer_seconds) if peer
                else (False, 0, float("nan"), False)
            )
            rows.append((ours_row, peer_row))
            print(f"{seed:>4}  {_cell(ours_row):>28}  {_cell(peer_row):>28}", flush=True)
        load = load_line()
    ours_median = statistics.median(row[0][2] for row in rows)
    peer_median = statistics.median(row[1][2] for row in rows)
    censored = any(row[1][3] for row in rows)  # a cut time is a lower bound
    bound = "<= " if censored else ""
    print(f"median  {ours_median:>26.2f}s  {'>=' if censored else '':>2}{peer_median:>25.2f}s")
    print(f"solved: checked-rl {sum(r[0][0] for r in rows)}/{len(rows)}, "
          f"Stable-Baselines3 {sum(r[1][0] for r in rows)}/{len(rows)}")
    print(f"ratio checked-rl / Stable-Baselines3 median time to solve: "
          f"{bound}{ours_median / peer_median:.3f} (target <= 0.10)")
    print(load)


def _cell(row: Row) -> str:
    solved, steps, seconds, cut = row
    outcome = "solved" if solved else "cut" if cut else "NOT solved"
    return f"{outcome} {steps:>6} steps {'>=' if cut else '':>2}{seconds:6.2f}s"


if __name__ == "__main__":
    main()
