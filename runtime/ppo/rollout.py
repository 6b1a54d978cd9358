"""Typed fixed-horizon rollouts and their conversion to a PPO training batch.

A `Rollout` holds `T` steps of `N` environments as `[T, N, ...]` tensors, one field per part of
a transition plus what the policy said at collection time. Its constructor refuses fields whose
`T` or `N` disagree: TorchLean's `steps.size = horizon` invariant, checked at run time.
"""

from dataclasses import dataclass, fields

import torch
from jaxtyping import Bool, Float, Shaped
from torch import Tensor

from checked_rl.runtime import returns
from checked_rl.runtime.contract import Transition
from checked_rl.runtime.shapes import typechecked

__all__ = ["Rollout", "TrainingBatch", "to_training_batch"]


@dataclass(frozen=True)
class Rollout:
    """`T` steps from `N` environments; step `(t, i)` is one transition of environment `i`.

    Attributes:
        observations: `[T, N, *obs]` (any dtype), the observation each action was chosen from.
        actions: `[T, N]` int64 (discrete), or `[T, N, *act]` floating (a `Box`: the actions
            as sampled, unclipped).
        log_probs: `[T, N]`, log-probability of the action under the collecting policy.
        rewards: `[T, N]`.
        terminated: `[T, N]` bool.
        truncated: `[T, N]` bool.
        values: `[T, N]`, the critic's value of `observations`.
        next_values: `[T, N]`, the critic's value of `next_observations` (so a truncated step
            bootstraps from its true final observation).
        next_observations: `[T, N, *obs]`, the true successors (before any reset).
    """

    observations: Shaped[Tensor, "T N *obs"]
    actions: Shaped[Tensor, "T N *act"]
    log_probs: Float[Tensor, "T N"]
    rewards: Float[Tensor, "T N"]
    terminated: Bool[Tensor, "T N"]
    truncated: Bool[Tensor, "T N"]
    values: Float[Tensor, "T N"]
    next_values: Float[Tensor, "T N"]
    next_observations: Shaped[Tensor, "T N *obs"]

    def __post_init__(self) -> None:
        first = self.observations
        if not isinstance(first, Tensor) or first.dim() < 2:
            raise ValueError(
                f"Rollout.observations must be a [T, N, *obs] tensor, got {_describe(first)}"
            )
        horizon, num_envs = first.shape[:2]
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, Tensor):
                raise ValueError(f"Rollout.{field.name} must be a tensor, got {_describe(value)}")
            if value.dim() < 2 or tuple(value.shape[:2]) != (horizon, num_envs):
                raise ValueError(
                    f"Rollout.{field.name} has shape {tuple(value.shape)}, but "
                    f"Rollout.observations has [T, N] = [{horizon}, {num_envs}]: every field "
                    f"must start with the same T and N"
                )
            if value.device != first.device:
                raise ValueError(
                    f"Rollout.{field.name} is on {value.device}, observations on {first.device}"
                )
        following = self.next_observations
        if following.shape != first.shape or following.dtype != first.dtype:
            raise ValueError(
                f"Rollout.next_observations must have the shape {tuple(first.shape)} and dtype "
                f"{first.dtype} of observations, got {tuple(following.shape)} and "
                f"{following.dtype}"
            )
        for name in _PER_STEP:
            value = getattr(self, name)
            if value.dim() != 2:
                raise ValueError(
                    f"Rollout.{name} must have shape [T, N] = [{horizon}, {num_envs}], "
                    f"got {tuple(value.shape)}"
                )
        for name in _FLOATING:
            dtype = getattr(self, name).dtype
            if not dtype.is_floating_point:
                raise ValueError(f"Rollout.{name} must be floating, got dtype {dtype}")
        for name, expected in _EXACT_DTYPES.items():
            dtype = getattr(self, name).dtype
            if dtype != expected:
                raise ValueError(f"Rollout.{name} must have dtype {expected}, got {dtype}")
        actions = self.actions
        if not ((actions.dim() == 2 and actions.dtype == torch.int64)
                or (actions.dim() > 2 and actions.dtype.is_floating_point)):
            raise ValueError(
                f"Rollout.actions must be [T, N] int64 (discrete) or [T, N, *act] floating "
                f"(Box), got shape {tuple(actions.shape)} and dtype {actions.dtype}"
            )

    @property
    def horizon(self) -> int:
        """T, the steps per environment."""
        return self.observations.shape[0]

    @property
    def num_envs(self) -> int:
        """N, the environments."""
        return self.observations.shape[1]

    def transition(self, t: int) -> Transition:
        """Step `t` of every environment as one batched `Transition` (`[N, ...]` fields)."""
        return Transition(
            observation=self.observations[t],
            action=self.actions[t],
            reward=self.rewards[t],
            next_observation=self.next_observations[t],
            terminated=self.terminated[t],
            truncated=self.truncated[t],
        )


_PER_STEP = ("log_probs", "rewards", "terminated", "truncated", "values",
             "next_values")
_FLOATING = ("log_probs", "rewards", "values", "next_values")
_EXACT_DTYPES = {"terminated": torch.bool, "truncated": torch.bool}


def _describe(value: object) -> str:
    """`Tensor[shape, dtype]` or the type name, for error messages."""
    if isinstance(value, Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


@dataclass(frozen=True)
class TrainingBatch:
    """A rollout flattened to `B = T x N` samples, with advantages and value targets.

    Attributes:
        observations: `[B, *obs]`.
        actions: `[B]` int64, or `[B, *act]` floating (Box).
        log_probs: `[B]`, log-probabilities under the collecting policy.
        advantages: `[B]`, GAE, z-scored over the batch when normalisation is on (policy term).
        returns: `[B]`, lambda-returns from the unnormalised advantages (value targets).
        values: `[B]`, the critic's values at collection time.
    """

    observations: Shaped[Tensor, "B *obs"]  # noqa: F821
    actions: Shaped[Tensor, "B *act"]  # noqa: F821
    log_probs: Float[Tensor, " B"]
    advantages: Float[Tensor, " B"]
    returns: Float[Tensor, " B"]
    values: Float[Tensor, " B"]

    def __len__(self) -> int:
        return self.actions.shape[0]

    def select(self, indices: Tensor) -> "TrainingBatch":
        """The samples at `indices` (a minibatch)."""
        return TrainingBatch(*(getattr(self, f.name)[indices] for f in fields(self)))


@typechecked
def to_training_batch(
    rollout: Rollout, *, gamma: float, lam: float, normalize: bool = True
) -> TrainingBatch:
    """GAE advantages and lambda-return targets for every step, flattened over time and envs.

    Advantages come from `runtime.returns.gae` in the values' dtype (Schulman et al. 2015,
    eq. 16); value targets are `advantages + values`, the lambda-returns, computed before the
    advantages are z-scored with `runtime.returns.normalize_advantages` for the policy term.
    """
    dtype = rollout.values.dtype
    advantages = returns.gae(
        rewards=rollout.rewards.to(dtype),
        values=rollout.values,
        next_values=rollout.next_values.to(dtype),
        terminated=rollout.terminated,
        truncated=rollout.truncated,
        gamma=gamma,
        lam=lam,
    )
    targets = advantages + rollout.values
    if normalize:
        advantages = returns.normalize_advantages(advantages)
    size = rollout.horizon * rollout.num_envs
    return TrainingBatch(
        observations=rollout.observations.reshape(size, *rollout.observations.shape[2:]),
        actions=rollout.actions.reshape(size, *rollout.actions.shape[2:]),
        log_probs=rollout.log_probs.reshape(size),
        advantages=advantages.reshape(size),
        returns=targets.reshape(size),
        values=rollout.values.reshape(size),
    )
