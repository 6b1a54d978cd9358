"""N Pendulums stepped together as tensors: the batched twin of `spec.envs.pendulum`.

The state is `[2, N]`, `[theta, theta_dot]` (the angle is not wrapped, as upstream). Actions
are `[N, 1]` torques of a float dtype, clipped to `±max_torque`; the step follows the spec
operation by operation, in the environment's dtype, except that the terms of the clipped
torque `u`, `0.001 u^2` and `3 / (m l^2) u`, are computed in the action's dtype, as upstream's
NumPy promotion does (float32 for Gymnasium's own action samples).

Source: gymnasium/envs/classic_control/pendulum.py (`PendulumEnv`).
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from checked_rl.runtime.envs.classic_control import ClassicControl
from checked_rl.spec.envs import pendulum as spec


class Pendulum(ClassicControl):
    """`num_envs` Pendulum-v1 copies on one device (see `runtime.envs.classic_control`)."""

    spec = spec
    physics_names = ("theta", "theta_dot")
    observation_shape = spec.OBSERVATION_SHAPE
    action_shape = spec.ACTION_SHAPE

    def reset_box(self) -> tuple[Sequence[float], Sequence[float]]:
        high = [self.params.reset_angle, self.params.reset_speed]
        return [-v for v in high], high

    def observation(self, physics: Tensor) -> Tensor:
        """`[N, 3]`: `[cos theta, sin theta, theta_dot]`."""
        theta, theta_dot = physics
        return torch.stack((theta.cos(), theta.sin(), theta_dot), dim=1)

    def advance(self, physics: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p = self.params
        theta, theta_dot = physics
        # Clipped in the action's dtype; its cost and its push computed in it, as upstream.
        clipped = actions[:, 0].clamp(-p.max_torque, p.max_torque)
        costs = (
            angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + (0.001 * clipped**2).to(self.dtype)
        )
        push = (3.0 / (p.m * p.l**2) * clipped).to(self.dtype)
        accel = 3 * p.g / (2 * p.l) * torch.sin(theta) + push
        new_theta_dot = (theta_dot + accel * p.dt).clamp(-p.max_speed, p.max_speed)
        new_theta = theta + new_theta_dot * p.dt
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return torch.stack((new_theta, new_theta_dot)), -costs, terminated


def angle_normalize(theta: Tensor) -> Tensor:
    """`theta` into `[-pi, pi)`: `(theta + pi) mod 2 pi - pi` (`spec...angle_normalize`)."""
    return torch.remainder(theta + math.pi, 2 * math.pi) - math.pi
