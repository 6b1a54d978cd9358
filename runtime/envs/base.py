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


def checked_device(
    owner: str, num_envs: int, dtype: torch.dtype, device: str | torch.device
) -> torch.device:
    """Check a batched environment's constructor arguments; return its device.

    Raises a ValueError naming `owner` unless `num_envs` is at least 1 and `dtype` is float32
    or float64. The device comes back as tensors on it report theirs: "cuda" becomes "cuda:0".
    """
    if num_envs < 1:
        raise ValueError(f"{owner}: num_envs must be at least 1, got {num_envs}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{owner}: dtype must be torch.float32 or torch.float64, got {dtype}")
    return torch.empty(0, device=device).device


def check_actions(owner: str, actions: Tensor, num_envs: int, device: torch.device) -> None:
    """Raise a ValueError naming `owner` unless `actions` is `[num_envs]` int64 on `device`.

    Cheap enough for every step: it compares shape, dtype and device, not values.
    """
    if actions.shape != (num_envs,) or actions.dtype != torch.int64 or actions.device != device:
        raise ValueError(
            f"{owner}: expected actions of shape ({num_envs},), dtype torch.int64 on {device}, "
            f"got shape {tuple(actions.shape)}, dtype {actions.dtype} on {actions.device}"
        )
