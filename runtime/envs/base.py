"""What every batched runtime environment provides.

A batched environment steps `num_envs` copies together as tensors on one device. It resets the
copies that finish in the same step (same-step auto-reset): `step` returns the true successor
observations, also for the copies that just ended, and `observe()` afterwards returns the reset
observations there. No step is wasted and no transition mixes two episodes.
"""

from typing import NamedTuple, Protocol

import torch
from torch import Tensor


class EnvStep(NamedTuple):
    """The outcome of one batched step.

    Attributes:
        next_observation: `[N, *obs]`, the true successors (before any reset).
        reward: `[N]`, floating.
        terminated: `[N]` bool, the MDP reached a terminal state.
        truncated: `[N]` bool, the episode was cut by a limit.
    """

    next_observation: Tensor
    reward: Tensor
    terminated: Tensor
    truncated: Tensor


class BatchedEnv(Protocol):
    """The interface sessions and properties rely on."""

    num_envs: int
    device: torch.device
    dtype: torch.dtype
    observation_shape: tuple[int, ...]
    n_actions: int
    observation_low: Tensor | None
    observation_high: Tensor | None

    def reset(self, seed: int | None = None) -> Tensor:
        """Reset every copy (reseeding first when `seed` is given); return `[N, *obs]`."""
        ...

    def observe(self) -> Tensor:
        """The current observations `[N, *obs]` (reset observations after a done)."""
        ...

    def step(self, actions: Tensor) -> EnvStep:
        """Apply `actions` (`[N]` int64), auto-reset the copies that are done."""
        ...
