"""The policy's distribution over actions, chosen by the action space: its head.

A head turns the actor's output for a batch `[B, A]` (logits, or the means of a Gaussian) into
actions, their log-probabilities and entropies, and greedy actions:

- `CategoricalHead` for `Discrete(n)` actions (`runtime.distributions`): actions `[B]` int64,
  sampled by inverse CDF from uniforms `[B]`, greedy = argmax.
- `GaussianHead` for `Box` actions of shape `*act` (`runtime.gaussian`): a diagonal Gaussian
  over the `A = prod(act)` flattened entries with a state-independent log-std (one parameter
  `log_std [A]`, initialised to 0, as CleanRL's `ppo_continuous_action.py`); actions
  `[B, *act]`, sampled as `mean + exp(log_std) * z` from standard normals `z [B, A]`, never
  clipped here (the session clips what the environment receives, the rollout records the
  sample); the log-probability is summed over the action's entries; greedy = the mean (mode).

The random numbers come from `noise(horizon, num_envs, generator, device)`, drawn in one call
per rollout from the run's generator, so a run is reproducible from its seed.
"""

import math

import torch
from torch import Tensor, nn

from checked_rl.runtime import distributions, gaussian

__all__ = ["HEADS", "CategoricalHead", "GaussianHead", "PolicyHead"]

HEADS = ("categorical", "gaussian")
"""The names of the heads, as `describe()` records them in a checkpoint's `network`."""


class CategoricalHead(nn.Module):
    """Categorical actions `0 .. n - 1` from logits `[B, n]`; no parameters of its own."""

    name = "categorical"

    def noise(self, horizon: int, num_envs: int, generator: torch.Generator | None,
              device: torch.device) -> Tensor:
        """Uniforms `[T, N]` in `[0, 1)`, one per action to sample."""
        return torch.rand(horizon, num_envs, generator=generator, device=device)

    def sample(self, logits: Tensor, noise: Tensor) -> Tensor:
        """Actions `[B]` by inverse CDF from uniforms `[B]` (`distributions.sample`)."""
        return distributions.sample(logits, noise.to(logits.dtype))

    def log_prob(self, logits: Tensor, actions: Tensor) -> Tensor:
        """`log pi(a | s)`, `[B]`."""
        return distributions.log_prob(logits, actions)

    def entropy(self, logits: Tensor) -> Tensor:
        """The entropy of each distribution, `[B]`."""
        return distributions.entropy(logits)

    def greedy(self, logits: Tensor) -> Tensor:
        """The most probable action, `[B]`."""
        return distributions.greedy(logits)


class GaussianHead(nn.Module):
    """Diagonal Gaussian actions of shape `action_shape` from means `[B, prod(action_shape)]`."""

    name = "gaussian"

    def __init__(self, action_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.action_shape = tuple(action_shape)
        self.log_std = nn.Parameter(torch.zeros(math.prod(self.action_shape)))

    def noise(self, horizon: int, num_envs: int, generator: torch.Generator | None,
              device: torch.device) -> Tensor:
        """Standard normals `[T, N, A]`, one per entry of every action to sample."""
        size = (horizon, num_envs, self.log_std.shape[0])
        return torch.randn(size, generator=generator, device=device)

    def sample(self, mean: Tensor, noise: Tensor) -> Tensor:
        """Actions `[B, *act]`: `gaussian.sample(mean, log_std, z)`, unclipped."""
        actions = gaussian.sample(mean, self.log_std, noise.to(mean.dtype))
        return actions.reshape(mean.shape[0], *self.action_shape)

    def log_prob(self, mean: Tensor, actions: Tensor) -> Tensor:
        """`log pi(a | s)` summed over the action's entries, `[B]`."""
        flat = actions.reshape(mean.shape).to(mean.dtype)
        return gaussian.log_prob(mean, self.log_std, flat)

    def entropy(self, mean: Tensor) -> Tensor:
        """The entropy of each distribution, `[B]` (the same for all: the log-std is shared)."""
        return gaussian.entropy(mean, self.log_std)

    def greedy(self, mean: Tensor) -> Tensor:
        """The mode, the mean itself, as actions `[B, *act]`."""
        return gaussian.mode(mean, self.log_std).reshape(
            mean.shape[0], *self.action_shape)


PolicyHead = CategoricalHead | GaussianHead
