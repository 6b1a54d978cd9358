"""N MountainCars stepped together as tensors: the batched twins of `spec.envs.mountain_car`
(`MountainCar`, discrete pushes) and `spec.envs.mountain_car_continuous`
(`MountainCarContinuous`, a continuous force).

The state is `[2, N]`, `[position, velocity]`. Both follow their spec operation by operation;
in float64 the results differ from the spec's only where torch's `cos` differs from
`math.cos` in the last bits. Upstream's continuous car also stores its state in float32 after
every step and mixes float32 and float64 arithmetic by NumPy's promotion rules; the twin stores
float32-rounded states too (so float64 twins track the spec closely) but computes in its dtype.

Source: gymnasium/envs/classic_control/mountain_car.py (`MountainCarEnv`) and
continuous_mountain_car.py (`Continuous_MountainCarEnv`).
"""

from collections.abc import Sequence

import torch
from torch import Tensor

from checked_rl.runtime.envs.classic_control import ClassicControl
from checked_rl.spec.envs import mountain_car as spec
from checked_rl.spec.envs import mountain_car_continuous as continuous_spec


class _Car(ClassicControl):
    """What both cars share: the state `[position, velocity]`, observed as it is, and the
    reset box (a position in `[reset_low, reset_high]`, at rest)."""

    physics_names = ("position", "velocity")

    def reset_box(self) -> tuple[Sequence[float], Sequence[float]]:
        return [self.params.reset_low, 0.0], [self.params.reset_high, 0.0]

    def observation(self, physics: Tensor) -> Tensor:
        """`[N, 2]`: `[position, velocity]`."""
        return physics.t()


class MountainCar(_Car):
    """`num_envs` MountainCar-v0 copies on one device (see `runtime.envs.classic_control`).

    Actions are `[N]` int64: 0 (push left), 1 (none), 2 (push right).
    """

    spec = spec
    observation_shape = spec.OBSERVATION_SHAPE
    n_actions = spec.N_ACTIONS

    def advance(self, physics: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p = self.params
        position, velocity = physics
        push = (actions - 1).to(self.dtype) * p.force
        velocity = velocity + (push + torch.cos(3 * position) * -p.gravity)
        return _move(p, position, velocity, torch.full_like(velocity, -1.0))


class MountainCarContinuous(_Car):
    """`num_envs` MountainCarContinuous-v0 copies on one device.

    Actions are `[N, 1]` of a float dtype, the force before clipping to
    `[min_action, max_action]`; the reward charges `0.1 a^2` of the unclipped action.
    """

    spec = continuous_spec
    observation_shape = continuous_spec.OBSERVATION_SHAPE
    action_shape = continuous_spec.ACTION_SHAPE

    def advance(self, physics: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p = self.params
        position, velocity = physics
        push = actions[:, 0].to(self.dtype)
        # The force times power in the action's dtype, as upstream computes it.
        force = (actions[:, 0].clamp(p.min_action, p.max_action) * p.power).to(self.dtype)
        velocity = velocity + (force - p.gravity * torch.cos(3 * position))
        cost = torch.square(push) * p.action_cost
        new, reward, terminated = _move(p, position, velocity, -cost)
        reward = torch.where(terminated, (p.goal_reward - cost), reward)
        return new.to(torch.float32).to(self.dtype), reward, terminated


def _move(params, position: Tensor, velocity: Tensor, reward: Tensor) -> tuple[Tensor, ...]:
    """Clip the new velocity, move, stop at the left wall; `(new, reward, terminated)`."""
    velocity = velocity.clamp(-params.max_speed, params.max_speed)
    position = (position + velocity).clamp(params.min_position, params.max_position)
    velocity = torch.where((position == params.min_position) & (velocity < 0), 0.0, velocity)
    terminated = (position >= params.goal_position) & (velocity >= params.goal_velocity)
    return torch.stack((position, velocity)), reward, terminated
