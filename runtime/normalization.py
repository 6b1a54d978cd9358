"""Batched running normalisation of observations and rewards: the twin of `spec.normalization`.

Statistics are float64 tensors on the device of the data (CPU or CUDA); the count is a Python
float. `ObservationNormalizer` keeps running moments of observations `[N, *S]` and maps them to
`clip((x - mean) / sqrt(var + eps), -clip, clip)` as float32 (the networks' dtype);
`RewardScaler` keeps each environment's discounted return and scales rewards by the running
standard deviation of the returns. Both have `state_dict` / `load_state_dict`, and a frozen
mode (`frozen=True`: statistics never change) for evaluation. `FrozenObservationNormalizer`
is the frozen map as a TorchScript-compatible `nn.Module`, for exported actors.
"""

from typing import Any

import torch
from jaxtyping import Bool, Float, Shaped
from torch import Tensor, nn

from checked_rl.runtime.shapes import typechecked
from checked_rl.spec.normalization import CLIP, EPSILON, INITIAL_COUNT

__all__ = [
    "FrozenObservationNormalizer",
    "ObservationNormalizer",
    "RewardScaler",
    "RunningMoments",
    "normalize_observations",
]


def normalize_observations(
    x: Tensor, mean: Tensor, var: Tensor, clip: float, epsilon: float
) -> Tensor:
    """`clip((x - mean) / sqrt(var + epsilon), -clip, clip)` in float64, returned as float32.

    Plain `Tensor` annotations: TorchScript compiles this function into exported actors, so
    training, evaluation and the exported file compute the same numbers.
    """
    scaled = (x.to(torch.float64) - mean) / torch.sqrt(var + epsilon)
    return scaled.clamp(-clip, clip).to(torch.float32)


class RunningMoments:
    """Mean, population variance and count of a stream of batches `[B, *S]` (float64).

    Starts from the prior of `spec.normalization.initial_moments` (mean 0, variance 1, count
    `INITIAL_COUNT`) and merges each batch with Chan, Golub & LeVeque's formula.
    """

    def __init__(
        self, shape: tuple[int, ...], *, device: torch.device | str = "cpu",
        count: float = INITIAL_COUNT,
    ) -> None:
        self.shape = tuple(shape)
        self.mean = torch.zeros(self.shape, dtype=torch.float64, device=device)
        self.var = torch.ones(self.shape, dtype=torch.float64, device=device)
        self.count = float(count)

    @typechecked
    def update(self, x: Shaped[Tensor, " B *obs"]) -> None:
        """Merge the moments of the rows of `x` into the running ones."""
        if tuple(x.shape[1:]) != self.shape or x.shape[0] < 1:
            raise ValueError(
                f"RunningMoments.update: expected a batch [B >= 1, *{list(self.shape)}], "
                f"got {list(x.shape)}"
            )
        x = x.to(device=self.mean.device, dtype=torch.float64)
        batch_count = float(x.shape[0])
        batch_mean = x.mean(dim=0)
        batch_var = x.var(dim=0, correction=0)
        count = self.count + batch_count
        delta = batch_mean - self.mean
        m2 = (self.var * self.count + batch_var * batch_count
              + delta * delta * (self.count * batch_count / count))
        self.mean = self.mean + delta * (batch_count / count)
        self.var = m2 / count
        self.count = count

    def state_dict(self) -> dict[str, Any]:
        """`mean`, `var` (float64 tensors) and `count` (a float)."""
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output; a wrong shape or a bad count is a `ValueError`."""
        mean, var, count = state.get("mean"), state.get("var"), state.get("count")
        for name, value in (("mean", mean), ("var", var)):
            if not isinstance(value, Tensor) or tuple(value.shape) != self.shape:
                found = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(
                    f"running moments: {name} must be a tensor of shape {list(self.shape)}, "
                    f"got {found}"
                )
        if isinstance(count, bool) or not isinstance(count, float | int) or not count > 0:
            raise ValueError(f"running moments: count must be a positive number, got {count!r}")
        if not bool(torch.isfinite(mean).all()) or not bool((var >= 0).all()):
            raise ValueError("running moments: mean must be finite and var non-negative")
        device = self.mean.device
        self.mean = mean.to(device=device, dtype=torch.float64, copy=True)
        self.var = var.to(device=device, dtype=torch.float64, copy=True)
        self.count = float(count)


class ObservationNormalizer:
    """Running moments of observations and the clipped z-score of `spec.normalization`.

    Args:
        shape: the observation shape `S`.
        clip: normalised values are clipped to `[-clip, clip]`.
        epsilon: added to the variance inside the square root.
        frozen: `update` leaves the statistics unchanged (evaluation).
    """

    def __init__(
        self, shape: tuple[int, ...], *, clip: float = CLIP, epsilon: float = EPSILON,
        frozen: bool = False, device: torch.device | str = "cpu",
    ) -> None:
        if not clip > 0 or not epsilon >= 0:
            raise ValueError(f"ObservationNormalizer: clip must be > 0 and epsilon >= 0, got "
                             f"clip={clip!r}, epsilon={epsilon!r}")
        self.moments = RunningMoments(shape, device=device)
        self.clip, self.epsilon, self.frozen = float(clip), float(epsilon), frozen

    @typechecked
    def update(self, observations: Shaped[Tensor, " N *obs"]) -> None:
        """Add a batch of observations to the statistics (nothing when frozen)."""
        if not self.frozen:
            self.moments.update(observations)

    @typechecked
    def normalize(self, observations: Shaped[Tensor, " N *obs"]) -> Float[Tensor, " N *obs"]:
        """The normalised observations (float32), under the current statistics."""
        return normalize_observations(
            observations.to(self.moments.mean.device), self.moments.mean, self.moments.var,
            self.clip, self.epsilon,
        )

    def frozen_module(self) -> "FrozenObservationNormalizer":
        """The current map as a fixed `nn.Module` (copies of the statistics)."""
        return FrozenObservationNormalizer(
            self.moments.mean, self.moments.var, clip=self.clip, epsilon=self.epsilon
        )

    def state_dict(self) -> dict[str, Any]:
        """The running moments."""
        return self.moments.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output."""
        self.moments.load_state_dict(state)


class FrozenObservationNormalizer(nn.Module):
    """A fixed observation normaliser (buffers `mean`, `var`), scriptable with TorchScript.

    Takes one observation `[*S]` or a batch `[B, *S]` and returns float32 of the same shape.
    """

    def __init__(self, mean: Tensor, var: Tensor, *, clip: float, epsilon: float) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().to(torch.float64).clone())
        self.register_buffer("var", var.detach().to(torch.float64).clone())
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.observation_shape = [int(n) for n in mean.shape]

    def forward(self, observation: Tensor) -> Tensor:
        rank = len(self.observation_shape)
        if observation.dim() < rank or list(
            observation.shape[observation.dim() - rank:]
        ) != self.observation_shape:
            raise ValueError(
                f"expected an observation of shape {self.observation_shape} or a batch of "
                f"them, got {list(observation.shape)}"
            )
        return normalize_observations(observation, self.mean, self.var, self.clip, self.epsilon)


class RewardScaler:
    """Scale rewards by the running standard deviation of each environment's discounted return.

    At each step (`spec.normalization.scale_rewards`): `R <- gamma * R + r`; the moments take
    the batch `R` `[N]` (unless frozen); the reward becomes `clip(r / sqrt(var_R + eps))` in
    the reward's dtype; `R` restarts at 0 where the step `terminated` or `truncated`.
    """

    def __init__(
        self, num_envs: int, *, gamma: float, clip: float = CLIP, epsilon: float = EPSILON,
        frozen: bool = False, device: torch.device | str = "cpu",
    ) -> None:
        if not 0.0 <= gamma <= 1.0 or not clip > 0 or not epsilon >= 0:
            raise ValueError(
                f"RewardScaler: gamma must lie in [0, 1], clip be > 0 and epsilon >= 0, got "
                f"gamma={gamma!r}, clip={clip!r}, epsilon={epsilon!r}"
            )
        self.moments = RunningMoments((), device=device)
        self.returns = torch.zeros(num_envs, dtype=torch.float64, device=device)
        self.gamma, self.clip, self.epsilon = float(gamma), float(clip), float(epsilon)
        self.frozen = frozen

    @typechecked
    def __call__(
        self,
        rewards: Float[Tensor, " N"],
        terminated: Bool[Tensor, " N"],
        truncated: Bool[Tensor, " N"],
    ) -> Float[Tensor, " N"]:
        """The scaled rewards of one step; updates the returns (and the moments unless frozen)."""
        raw = rewards.to(device=self.returns.device, dtype=torch.float64)
        self.returns = self.gamma * self.returns + raw
        if not self.frozen:
            self.moments.update(self.returns)
        scaled = (raw / torch.sqrt(self.moments.var + self.epsilon)).clamp(-self.clip, self.clip)
        done = (terminated | truncated).to(self.returns.device)
        self.returns = torch.where(done, 0.0, self.returns)
        return scaled.to(device=rewards.device, dtype=rewards.dtype)

    def reset(self) -> None:
        """Every environment starts a new episode: `R = 0`."""
        self.returns = torch.zeros_like(self.returns)

    def state_dict(self) -> dict[str, Any]:
        """The moments of the returns and the returns `[N]`."""
        return {"moments": self.moments.state_dict(), "returns": self.returns.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`'s output; a wrong number of environments is a `ValueError`."""
        returns = state.get("returns")
        if not isinstance(returns, Tensor) or returns.shape != self.returns.shape:
            found = list(returns.shape) if isinstance(returns, Tensor) else type(returns).__name__
            raise ValueError(
                f"reward scaler: returns must be a tensor of shape {list(self.returns.shape)}, "
                f"got {found}"
            )
        moments = state.get("moments")
        if not isinstance(moments, dict):
            raise ValueError("reward scaler: moments must be a state dict")
        self.moments.load_state_dict(moments)
        self.returns = returns.to(device=self.returns.device, dtype=torch.float64, copy=True)
