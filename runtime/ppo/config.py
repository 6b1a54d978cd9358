"""PPO settings: one dataclass, a docstring under every field, and named presets.

`torchlean` keeps the constants of TorchLean's PPO CartPole example (one environment, hidden
width 32, horizon 64, two full-batch epochs). `default` is tuned for the least wall time to solve
CartPole-v1 on a 2-core CPU with the batched torch session: many environments and a short
horizon (per-step Python overhead dominates, so a wide batch is cheap), a few large minibatches,
a high annealed step size and a wide clip range. Tuned by the environment steps to solve over
seeds 0-9 (all ten solve); the timing against Stable-Baselines3 is benchmarks/ppo_cartpole.py.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_ENV_ID",
    "EVAL_SEED_OFFSET",
    "PRESETS",
    "SEED_BOUND",
    "PPOConfig",
    "preset",
]

DEFAULT_ENV_ID = "CartPole-v1"
"""The environment trained on unless another is named."""

SEED_BOUND = 2**64
"""Seeds lie in [0, SEED_BOUND): what torch's generators and NumPy's seed sequences take whole."""

EVAL_SEED_OFFSET = 1_000_000
"""Evaluation episode j of a run seeded s is reset with seed s + EVAL_SEED_OFFSET + j.

Training environment i is reset with s + i, so the two ranges never meet while
num_envs < EVAL_SEED_OFFSET."""


@dataclass(frozen=True)
class PPOConfig:
    """Everything that decides a PPO run, apart from the session kind and the device.

    Derived sizes (`batch_size`, `minibatch_size`, `eval_seed`) are properties computed here
    and nowhere else. Source of the algorithm: Schulman et al. 2017, "Proximal Policy
    Optimization Algorithms", Algorithm 1.
    """

    seed: int = 0
    """Seed of the network initialisation, action sampling, minibatch order and training envs."""
    num_envs: int = 64
    """Training environments stepped together (N); environment i is reset with seed + i."""
    horizon: int = 16
    """Steps collected from each environment per update (T); a batch holds T x N steps."""
    hidden: int = 64
    """Width of the two tanh hidden layers of the actor and of the critic."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """GAE lambda (Schulman et al. 2015, eq. 16)."""
    learning_rate: float = 3e-3
    """Adam step size (at the first update when annealed)."""
    anneal_lr: bool = True
    """Decay the step size linearly to zero over `updates`."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    epochs: int = 4
    """Passes over each batch."""
    minibatches: int = 2
    """Minibatches per pass; must divide T x N."""
    clip_coef: float = 0.3
    """Clipping range epsilon of the surrogate objective (Schulman et al. 2017, eq. 7)."""
    clip_vloss: bool = False
    """Also clip the value loss: values may move at most `clip_coef` from those at collection
    time (OpenAI Baselines' `ppo2`, CleanRL's `clip_vloss`)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Global norm the gradients of actor and critic are clipped to (<= 0: no clipping)."""
    normalize_advantages: bool = True
    """Z-score the advantages over the whole batch for the policy term."""
    normalize_observations: bool = False
    """Feed the networks running-normalised observations, clip((x - mean) / sqrt(var + 1e-8)),
    as Stable-Baselines3's `VecNormalize` (`spec.normalization`); the statistics are updated
    during collection, frozen at evaluation, saved in checkpoints and applied by exported
    actors."""
    normalize_rewards: bool = False
    """Train on rewards divided by the running standard deviation of each environment's
    discounted return (`VecNormalize`'s reward scaler, discount `gamma`); the logged episode
    returns stay the raw ones."""
    clip_observations: float = 10.0
    """Normalised observations are clipped to [-clip_observations, clip_observations]."""
    clip_rewards: float = 10.0
    """Scaled rewards are clipped to [-clip_rewards, clip_rewards]."""
    updates: int = 100
    """Upper bound on the number of updates (collect + optimise)."""
    eval_every: int = 1
    """Evaluate the greedy policy every this many updates, and after the last one."""
    eval_episodes: int = 20
    """Held-out episodes per evaluation (one environment each, run in one session)."""
    eval_max_episode_steps: int = 500
    """Steps after which an evaluation episode is cut (the name of the environments' own step
    limit, `Params.max_episode_steps`)."""
    solved_return: float = 475.0
    """Stop early once the average evaluation return reaches this."""
    checkpoint_every: int = 25
    """Save a checkpoint every this many updates (when a checkpoint path is given)."""
    threads: int = 1
    """torch intra-op threads on CPU; fixed so that runs are reproducible."""

    def __post_init__(self) -> None:
        positive = ("num_envs", "horizon", "hidden", "epochs", "minibatches", "updates",
                    "eval_every", "eval_episodes", "eval_max_episode_steps", "checkpoint_every",
                    "threads")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PPOConfig.{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"PPOConfig.seed must be an integer, got {self.seed!r}")
        if not 0 <= self.seed < SEED_BOUND:
            raise ValueError(f"PPOConfig.seed must lie in [0, 2^64), got {self.seed}")
        if self.eval_seed + self.eval_episodes > SEED_BOUND:
            raise ValueError(
                f"PPOConfig.seed {self.seed} is too close to 2^64: the evaluation seeds "
                f"seed + {EVAL_SEED_OFFSET} + j must stay below 2^64"
            )
        for name in ("gamma", "lam"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"PPOConfig.{name} must lie in [0, 1], got {value!r}")
        for name in ("learning_rate", "adam_eps", "clip_coef", "clip_observations",
                     "clip_rewards"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"PPOConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("value_coef", "entropy_coef"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"PPOConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.batch_size % self.minibatches:
            raise ValueError(
                f"PPOConfig.minibatches must divide horizon x num_envs = {self.batch_size}, "
                f"got {self.minibatches}"
            )

    @property
    def batch_size(self) -> int:
        """Steps per update: horizon x num_envs."""
        return self.horizon * self.num_envs

    @property
    def minibatch_size(self) -> int:
        """Steps per gradient step."""
        return self.batch_size // self.minibatches

    @property
    def eval_seed(self) -> int:
        """First seed of the evaluation episodes: far above every training seed."""
        return self.seed + EVAL_SEED_OFFSET

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what checkpoints and logs store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PPOConfig":
        """Rebuild a config from `to_dict`'s output; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown PPOConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


PRESETS: dict[str, PPOConfig] = {
    "default": PPOConfig(),
    # TorchLean's PPO CartPole example: hidden 32, horizon 64, gamma 0.99, lambda 0.95,
    # Adam 3e-4, 2 full-batch epochs, 1000 updates, eval every 50 on 5 episodes, stop at 475.
    # What it leaves open takes the usual PPO values (clip 0.2, value weight 0.5, no entropy).
    "torchlean": PPOConfig(
        num_envs=1,
        horizon=64,
        hidden=32,
        gamma=0.99,
        lam=0.95,
        learning_rate=3e-4,
        anneal_lr=False,
        epochs=2,
        minibatches=1,
        clip_coef=0.2,
        entropy_coef=0.0,
        updates=1000,
        eval_every=50,
        eval_episodes=5,
        solved_return=475.0,
    ),
}


def preset(name: str, **overrides: Any) -> PPOConfig:
    """The preset `name` with `overrides` applied (each checked like any field)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)
