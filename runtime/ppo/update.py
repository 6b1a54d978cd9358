"""One PPO update and the state of a run between updates.

`update(run)` anneals the step size, collects `T` steps from each of the `N` training
environments, computes GAE advantages and lambda-return targets, makes `epochs` passes of
shuffled minibatch Adam steps, and returns the update's metrics (see `UPDATE_METRICS`).
`RunState` holds what a checkpoint saves (`snapshot`).
"""

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from checked_rl.runtime.ppo.checkpoint import CHECKPOINT_FORMAT
from checked_rl.runtime.ppo.collect import collect
from checked_rl.runtime.ppo.config import PPOConfig
from checked_rl.runtime.ppo.loss import ppo_loss_from_log_probs
from checked_rl.runtime.ppo.model import ActorCritic
from checked_rl.runtime.ppo.normalizing import normalization_state, raw_rewards
from checked_rl.runtime.ppo.rollout import Rollout, TrainingBatch, to_training_batch
from checked_rl.runtime.ppo.trainlog import TrainLog
from checked_rl.runtime.sessions import CheckedSession, StateNotCapturedError

__all__ = [
    "LOSS_METRICS",
    "UPDATE_METRICS",
    "EpisodeTracker",
    "RunState",
    "copy_tree",
    "explained_variance",
    "minibatch_loss",
    "optimise",
    "update",
]

LOSS_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
"""The loss terms of `optimise`, averaged over every minibatch step of an update."""

UPDATE_METRICS = (
    *LOSS_METRICS, "explained_variance", "learning_rate", "steps_per_s",
    "episodes", "episode_return_mean", "episode_return_min", "episode_return_max",
    "episode_length_mean",
)
"""The metrics `update` returns, in this order. The episode ones cover the training episodes
that ended during the update's collection (NaN when none ended)."""


@dataclass
class EpisodeTracker:
    """Running return and length of each training environment's current episode."""

    returns: Tensor
    lengths: Tensor

    @classmethod
    def zeros(cls, num_envs: int, device: torch.device) -> "EpisodeTracker":
        """No steps seen yet."""
        return cls(torch.zeros(num_envs, dtype=torch.float64, device=device),
                   torch.zeros(num_envs, dtype=torch.int64, device=device))

    def observe(self, rollout: Rollout) -> tuple[list[float], list[int]]:
        """Add a rollout's steps; the returns and lengths of the episodes that ended in it."""
        done = rollout.terminated | rollout.truncated
        ended_returns: list[Tensor] = []
        ended_lengths: list[Tensor] = []
        for t in range(done.shape[0]):
            self.returns += rollout.rewards[t].to(self.returns.dtype)
            self.lengths += 1
            ended_returns.append(self.returns[done[t]])
            ended_lengths.append(self.lengths[done[t]])
            self.returns = torch.where(done[t], 0.0, self.returns)
            self.lengths = torch.where(done[t], 0, self.lengths)
        return (torch.cat(ended_returns).tolist(), torch.cat(ended_lengths).tolist())


@dataclass
class RunState:
    """The mutable state of a run between updates (passed explicitly, no globals)."""

    config: PPOConfig
    meta: dict[str, str]
    session: Any
    eval_session: Any
    model: ActorCritic
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    log: TrainLog
    episodes: EpisodeTracker
    update: int = 0
    env_steps: int = 0
    best: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """A checkpoint of the state after `update` completed updates (copies, not views)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "run": dict(self.meta),
            "network": self.model.describe(),
            "update": self.update,
            "env_steps": self.env_steps,
            "model": copy_tree(self.model.state_dict()),
            "optimizer": copy_tree(self.optimizer.state_dict()),
            "rng": self.generator.get_state().clone(),
            "session": copy_tree(session_state(self.session), copy=False),
            "log": self.log.to_dict(),
            "normalization": normalization_state(self.session),
        }


def update(run: RunState) -> dict[str, float]:
    """One PPO update: anneal the step size, collect, compute advantages, optimise."""
    config = run.config
    tick = time.perf_counter()
    if config.anneal_lr:
        for group in run.optimizer.param_groups:
            group["lr"] = config.learning_rate * (1.0 - run.update / config.updates)
    learning_rate = float(run.optimizer.param_groups[0]["lr"])
    rollout = collect(run.session, run.model, config.horizon, generator=run.generator)
    ended_returns, ended_lengths = run.episodes.observe(raw_rewards(run.session, rollout))
    batch = to_training_batch(
        rollout, gamma=config.gamma, lam=config.lam, normalize=config.normalize_advantages
    )
    metrics = optimise(run.model, run.optimizer, batch, config, run.generator)
    run.update += 1
    run.env_steps += config.batch_size
    elapsed = time.perf_counter() - tick
    nan = float("nan")
    metrics.update(
        explained_variance=explained_variance(batch.values, batch.returns),
        learning_rate=learning_rate,
        steps_per_s=config.batch_size / max(elapsed, 1e-9),
        episodes=float(len(ended_returns)),
        episode_return_mean=sum(ended_returns) / len(ended_returns) if ended_returns else nan,
        episode_return_min=min(ended_returns, default=nan),
        episode_return_max=max(ended_returns, default=nan),
        episode_length_mean=sum(ended_lengths) / len(ended_lengths) if ended_lengths else nan,
    )
    return {name: metrics[name] for name in UPDATE_METRICS}


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """`1 - Var[returns - values] / Var[returns]`; NaN when the returns do not vary.

    >>> explained_variance(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0]))
    1.0
    """
    variance = float(returns.var(unbiased=False))
    if variance == 0.0:
        return float("nan")
    return 1.0 - float((returns - values).var(unbiased=False)) / variance


def optimise(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batch: TrainingBatch,
    config: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """`epochs` passes of minibatch Adam steps on the PPO loss; the loss terms (`LOSS_METRICS`)
    averaged over every step.

    With one minibatch the whole batch is used in order; otherwise each pass draws a fresh
    permutation from `generator` (same sequence on every run with the same seed).
    """
    size = len(batch)
    parameters = list(model.parameters())
    totals = torch.zeros(len(LOSS_METRICS), dtype=torch.float64, device=batch.actions.device)
    steps = 0
    for _ in range(config.epochs):
        if config.minibatches == 1:
            minibatches = [batch]
        else:
            order = torch.randperm(size, generator=generator, device=generator.device)
            minibatches = [
                batch.select(indices) for indices in order.split(config.minibatch_size)
            ]
        for minibatch in minibatches:
            loss, stats = minibatch_loss(model, minibatch, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.max_grad_norm > 0:
                nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            optimizer.step()
            totals += torch.stack([stats[name] for name in LOSS_METRICS]).to(totals.dtype)
            steps += 1
    return dict(zip(LOSS_METRICS, (totals / steps).tolist(), strict=True))


def minibatch_loss(
    model: ActorCritic, batch: TrainingBatch, config: PPOConfig
) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO loss of one minibatch under the current parameters, and its statistics: the
    loss from the log-probabilities and entropies of the model's head."""
    outputs, values = model(batch.observations)
    loss, stats = ppo_loss_from_log_probs(
        new_log_probs=model.head.log_prob(outputs, batch.actions),
        entropies=model.head.entropy(outputs),
        old_log_probs=batch.log_probs,
        advantages=batch.advantages,
        values=values,
        returns=batch.returns,
        old_values=batch.values,
        clip_coef=config.clip_coef,
        value_clip_coef=config.clip_coef if config.clip_vloss else None,
        value_coef=config.value_coef,
        entropy_coef=config.entropy_coef,
    )
    return loss, stats._asdict()


def copy_tree(value: Any, *, copy: bool = True) -> Any:
    """Nested dicts/lists with their tensors copied to the CPU (`copy=False`: only moved)."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=copy)
    if isinstance(value, dict):
        return {key: copy_tree(item, copy=copy) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(copy_tree(item, copy=copy) for item in value)
    return value


def session_state(session: CheckedSession) -> dict[str, Any] | None:
    """`session.state_dict()`, or None for a kind that cannot capture its environments."""
    try:
        return session.state_dict()
    except StateNotCapturedError:
        return None
