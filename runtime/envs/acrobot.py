"""N Acrobots stepped together as tensors: the batched twin of `spec.envs.acrobot`.

The physics is `spec.envs.acrobot` (itself Gymnasium's Acrobot-v1: RK4 over `dt`, angles
wrapped into `[-pi, pi]`, velocities clipped) applied elementwise to a `[4, N]` state
`[theta1, theta2, dtheta1, dtheta2]`, with the same operations in the same order; the results
differ from the spec's only where torch's `sin` and `cos` differ from NumPy's in the last bits.
Reset states are rounded to float32, as upstream's are. Torque noise, when
`params.torque_noise_max > 0`, comes from the torch generator (`reset_noise="torch"`) or, per
copy, from a NumPy generator that starts where the copy's reset generator stood after its reset
draw (`"gymnasium"`, as `spec.envs.acrobot.State.noise`).

Source: gymnasium/envs/classic_control/acrobot.py (`AcrobotEnv`).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from checked_rl.runtime.envs.base import numpy_generator
from checked_rl.runtime.envs.classic_control import ClassicControl
from checked_rl.spec.envs import acrobot as spec

WRAP_LIMIT = 64
"""At most this many shifts by `2 pi` wrap one angle (upstream loops until it fits; an angle
needing more than a few comes only from a state far outside what the dynamics reach)."""


class Acrobot(ClassicControl):
    """`num_envs` Acrobot-v1 copies on one device (see `runtime.envs.classic_control`).

    Actions are `[N]` int64: 0, 1, 2 for the torques `params.torques` (-1, 0, +1).
    """

    spec = spec
    physics_names = ("theta1", "theta2", "dtheta1", "dtheta2")
    observation_shape = spec.OBSERVATION_SHAPE
    n_actions = spec.N_ACTIONS

    def __init__(self, num_envs: int, params: spec.Params | None = None, **kwargs: Any) -> None:
        self._noise_rngs: list[np.random.Generator] = []
        super().__init__(num_envs, params, **kwargs)
        self._noise_rngs = self._noise_rngs or [np.random.default_rng() for _ in self._rngs]
        self._torques = self.tensor(self.params.torques)

    def reset_box(self) -> tuple[Sequence[float], Sequence[float]]:
        bound = self.params.reset_bound
        return [-bound] * 4, [bound] * 4

    def round_reset(self, fresh: Tensor) -> Tensor:
        """Upstream rounds its reset state to float32."""
        return fresh.to(torch.float32).to(self.dtype)

    def gymnasium_reset(self, env: int) -> np.ndarray:
        state, _ = spec.reset(self.params, self._rngs[env])
        if state.noise is not None:
            while len(self._noise_rngs) <= env:
                self._noise_rngs.append(np.random.default_rng())
            self._noise_rngs[env] = numpy_generator(state.noise)
        return state.physics()

    def observation(self, physics: Tensor) -> Tensor:
        """`[N, 6]`: `[cos th1, sin th1, cos th2, sin th2, w1, w2]`."""
        theta1, theta2, dtheta1, dtheta2 = physics
        parts = (theta1.cos(), theta1.sin(), theta2.cos(), theta2.sin(), dtheta1, dtheta2)
        return torch.stack(parts, dim=1)

    def advance(self, physics: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        torque = self._torques[actions]
        noise_max = self.params.torque_noise_max
        if noise_max > 0:
            torque = torque + self._noise(noise_max)
        new = rk4(self.params, physics, torque)
        theta1 = wrap(new[0], -np.pi, np.pi)
        theta2 = wrap(new[1], -np.pi, np.pi)
        dtheta1 = new[2].clamp(-self.params.max_vel_1, self.params.max_vel_1)
        dtheta2 = new[3].clamp(-self.params.max_vel_2, self.params.max_vel_2)
        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        reward = torch.where(terminated, 0.0, -1.0).to(self.dtype)
        return torch.stack((theta1, theta2, dtheta1, dtheta2)), reward, terminated

    def state_dict(self) -> dict[str, Any]:
        """`ClassicControl.state_dict`, with the per-copy noise generators in "gymnasium" mode."""
        state = super().state_dict()
        if self.reset_noise == "gymnasium":
            state["noise_rngs"] = [rng.bit_generator.state for rng in self._noise_rngs]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if self.reset_noise == "gymnasium":
            if len(state.get("noise_rngs", ())) != self.num_envs:
                raise ValueError(
                    f"Acrobot.load_state_dict: the state needs noise_rngs, one per each of the "
                    f"{self.num_envs} copies"
                )
            self._noise_rngs = [numpy_generator(saved) for saved in state["noise_rngs"]]

    def _noise(self, noise_max: float) -> Tensor:
        """`[N]` torque noise uniform in `[-noise_max, noise_max)`."""
        if self.reset_noise == "gymnasium":
            draws = [rng.uniform(-noise_max, noise_max) for rng in self._noise_rngs]
            return torch.tensor(draws, dtype=self.dtype, device=self.device)
        uniform = torch.rand(
            self.num_envs, generator=self._generator, dtype=self.dtype, device=self.device
        )
        return uniform.mul(2 * noise_max).sub(noise_max)


def derivatives(params: spec.Params, state: Tensor, torque: Tensor) -> Tensor:
    """`[4, N]`: `(w1, w2, w1', w2')` of `state` `[4, N]` (`spec.envs.acrobot.derivatives`)."""
    m1, m2 = params.link_mass_1, params.link_mass_2
    l1, lc1, lc2 = params.link_length_1, params.link_com_pos_1, params.link_com_pos_2
    i1 = i2 = params.link_moi
    g = params.gravity
    theta1, theta2, dtheta1, dtheta2 = state
    cos2, sin2 = torch.cos(theta2), torch.sin(theta2)
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * cos2) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * cos2) + i2
    phi2 = m2 * lc2 * g * torch.cos(theta1 + theta2 - np.pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * sin2
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
        + (m1 * lc1 + m2 * l1) * g * torch.cos(theta1 - np.pi / 2)
        + phi2
    )
    if params.dynamics == "nips":
        ddtheta2 = (torque + d2 / d1 * phi1 - phi2) / (m2 * lc2**2 + i2 - d2**2 / d1)
    else:
        ddtheta2 = (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * sin2 - phi2) / (
            m2 * lc2**2 + i2 - d2**2 / d1
        )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2))


def rk4(params: spec.Params, state: Tensor, torque: Tensor) -> Tensor:
    """One classical Runge-Kutta step of `dt` from `state` `[4, N]` (`spec.envs.acrobot.rk4`)."""
    dt = params.dt - 0
    half = dt / 2.0
    k1 = derivatives(params, state, torque)
    k2 = derivatives(params, state + half * k1, torque)
    k3 = derivatives(params, state + half * k2, torque)
    k4 = derivatives(params, state + dt * k3, torque)
    return state + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def wrap(x: Tensor, low: float, high: float) -> Tensor:
    """`x` shifted by `high - low` until within `[low, high]`, shift by shift as upstream."""
    span = high - low
    for _ in range(WRAP_LIMIT):
        above = x > high
        if not bool(above.any()):
            break
        x = torch.where(above, x - span, x)
    for _ in range(WRAP_LIMIT):
        below = x < low
        if not bool(below.any()):
            break
        x = torch.where(below, x + span, x)
    return x
