"""N CartPoles stepped together as tensors: the batched twin of `spec.envs.cartpole`.

The physics is `spec.envs.cartpole` (itself Gymnasium's CartPole-v1) applied elementwise to a
`[4, N]` state, one row per physical quantity so that every operation runs over contiguous
memory. Each copy counts its steps and is truncated after `params.max_episode_steps`; copies that
terminate or are truncated are reset in the same step (see `runtime.envs.base`).

Two sources of reset noise:

- `reset_noise="torch"` (default): every entry uniform on a grid of 2^16 points spanning
  `[-reset_bound, reset_bound)`, from a `torch.Generator` on the environment's device seeded by
  `reset(seed)` (see `CartPole._torch_noise`). Fresh noise for all copies is drawn on every step
  and used where a copy is done, so stepping never waits for the device.
- `reset_noise="gymnasium"`: copy `i` owns `np.random.default_rng(seed + i)` and draws each of
  its initial states from it exactly as Gymnasium's `CartPoleEnv.reset` does, auto-resets
  included. A torch environment, `N` spec environments and `N` Gymnasium environments seeded
  alike then start every episode in the same float64 state. This mode reads the done flags on
  the host at every step; it is for cross-checking, not for speed.

The state tensors are never modified in place: observations handed out stay valid snapshots.

Source: gymnasium/envs/classic_control/cartpole.py (`CartPoleEnv`, `CartPoleVectorEnv`).
"""

from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from runtime.envs.base import EnvStep
from runtime.shapes import typechecked
from spec.envs import cartpole as spec

ResetNoise = Literal["torch", "gymnasium"]
RESET_NOISES: tuple[ResetNoise, ...] = ("torch", "gymnasium")

Physics = Float[Tensor, "N 4"]
StepCounts = Int[Tensor, " N"]


class CartPole:
    """`num_envs` CartPole-v1 copies on one device; implements `runtime.envs.base.BatchedEnv`.

    Args:
        num_envs: the number of copies N.
        params: the spec parameters (integrator, reward variant, time limit, ...).
        device: where the state lives.
        dtype: the dtype of the state, the observations and the rewards (float32 or float64).
        reset_noise: "torch" or "gymnasium", see the module docstring.
        seed: if given, the constructor's reset is seeded with it.
    """

    observation_shape: tuple[int, ...] = spec.OBSERVATION_SHAPE
    n_actions: int = spec.N_ACTIONS

    def __init__(
        self,
        num_envs: int,
        params: spec.Params | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        reset_noise: ResetNoise = "torch",
        seed: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"CartPole: num_envs must be at least 1, got {num_envs}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"CartPole: dtype must be torch.float32 or torch.float64, got {dtype}")
        if reset_noise not in RESET_NOISES:
            raise ValueError(
                f"CartPole: reset_noise must be one of {RESET_NOISES}, got {reset_noise!r}"
            )
        self.num_envs = num_envs
        self.params = spec.Params() if params is None else params
        self.device = torch.empty(0, device=device).device  # "cuda" becomes "cuda:0"
        self.dtype = dtype
        self.reset_noise = reset_noise
        low, high = spec.observation_bounds(self.params)
        self.observation_low: Tensor | None = torch.as_tensor(low, dtype=dtype, device=self.device)
        self.observation_high: Tensor | None = torch.as_tensor(
            high, dtype=dtype, device=self.device
        )
        self._generator = torch.Generator(device=self.device)
        self._generator.seed()
        # One NumPy generator per copy in "gymnasium" mode (reseeded by `reset(seed)`).
        copies = range(num_envs if reset_noise == "gymnasium" else 0)
        self._rngs = [np.random.default_rng() for _ in copies]
        self._thresholds = torch.tensor(
            [[self.params.x_threshold], [self.params.theta_threshold]],
            dtype=dtype,
            device=self.device,
        )
        # Step counts are integers of the float's width, so one bit mask resets both.
        self._int = torch.int32 if dtype == torch.float32 else torch.int64
        self._bits = torch.empty(num_envs, dtype=torch.int64, device=self.device)
        self._noise = torch.empty(4, num_envs, dtype=dtype, device=self.device)
        self._noise_scale = self.params.reset_bound / 2**15
        self._physics = torch.zeros(4, num_envs, dtype=dtype, device=self.device)
        self._steps = torch.zeros(num_envs, dtype=self._int, device=self.device)
        self.reset(seed)

    @typechecked
    def reset(self, seed: int | None = None) -> Float[Tensor, "N 4"]:
        """Reset every copy (reseeding first when `seed` is given); return the observations.

        With `reset_noise="gymnasium"`, copy `i` is reseeded with `seed + i`.
        """
        if self.reset_noise == "torch":
            if seed is not None:
                self._generator.manual_seed(seed)
            self._physics = self._torch_noise(self._bits, self._noise).clone()
        else:
            if seed is not None:
                self._rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]
            self._physics = self._gymnasium_noise(range(self.num_envs))
        self._steps = torch.zeros(self.num_envs, dtype=self._int, device=self.device)
        return self.observe()

    @typechecked
    def observe(self) -> Float[Tensor, "N 4"]:
        """The current observations `[N, 4]` (the reset observation where a copy just ended)."""
        return self._physics.t()

    def step(self, actions: Tensor) -> EnvStep:
        """Push copy `i` left (`actions[i] == 0`) or right (`1`); auto-reset the copies done.

        `actions` must be an int64 tensor of shape `[N]` on the environment's device; its shape,
        dtype and device are checked on every call (cheaply, without jaxtyping), its values are
        not: an action other than 0 and 1 gives a force of `(2 a - 1) force_mag`.
        """
        if (
            actions.shape != (self.num_envs,)
            or actions.dtype != torch.int64
            or actions.device != self.device
        ):
            raise ValueError(
                f"CartPole.step: expected actions of shape ({self.num_envs},), dtype torch.int64 "
                f"on {self.device}, got shape {tuple(actions.shape)}, dtype {actions.dtype} "
                f"on {actions.device}"
            )
        new = physics_step(self.params, self._physics, actions)
        terminated = is_terminated(self._thresholds, new)
        steps = self._steps + 1
        if self.params.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = steps >= self.params.max_episode_steps
        done = terminated | truncated
        reward = rewards(self.params, terminated, self.dtype)
        # keep: all ones where a copy goes on, all zeros where it is done.
        keep = done.to(self._steps.dtype).sub_(1)
        self._steps = steps.bitwise_and_(keep)
        if self.reset_noise == "torch":
            self._physics = select_bits(keep, new, self._torch_noise(self._bits, self._noise))
        else:
            self._physics = self._gymnasium_reset_where(done, new)
        return EnvStep(new.t(), reward, terminated, truncated)

    @typechecked
    def get_state(self) -> tuple[Physics, StepCounts]:
        """Copies of the physics `[N, 4]` (x, x_dot, theta, theta_dot) and step counts `[N]`."""
        return self._physics.t().clone(), self._steps.to(torch.int64)

    @typechecked
    def set_state(self, physics: Physics, steps: StepCounts) -> None:
        """Overwrite every copy's physics `[N, 4]` and step count `[N]` (for properties)."""
        if physics.shape[0] != self.num_envs:
            raise ValueError(
                f"CartPole.set_state: expected physics for {self.num_envs} copies, "
                f"got shape {tuple(physics.shape)}"
            )
        self._physics = torch.empty_like(self._physics).copy_(physics.t())
        self._steps = steps.to(self.device, self._int, copy=True)

    def _torch_noise(self, bits: Tensor, out: Tensor) -> Tensor:
        """Fill `out` (`[4, K]`) with reset states from the torch generator, via `bits` (`[K]`).

        One 64-bit draw per copy, read as four 16-bit integers `k` in `[-2^15, 2^15)`, gives
        `k * reset_bound / 2^15`: uniform over 65536 points spaced `reset_bound / 2^15` apart
        in `[-reset_bound, reset_bound)`. Four float draws per copy would cost about four times
        as much generator time, and reset noise is drawn for every copy at every step.
        """
        bits.random_(-(2**63), None, generator=self._generator)
        grid = bits.view(torch.int16).view(out.shape)
        if self.dtype == torch.float32:
            return torch.mul(grid, self._noise_scale, out=out)
        return out.copy_(grid).mul_(self._noise_scale)

    def _gymnasium_noise(self, envs: range | list[int]) -> Tensor:
        """`[4, len(envs)]`: Gymnasium's reset draw from each listed copy's generator."""
        bound = self.params.reset_bound
        draws = np.stack(
            [self._rngs[i].uniform(low=-bound, high=bound, size=(4,)) for i in envs], axis=1
        )
        return torch.from_numpy(draws).to(self.device, self.dtype)

    def _gymnasium_reset_where(self, done: Tensor, new: Tensor) -> Tensor:
        """`new` with the done copies' columns replaced by their Gymnasium reset draws."""
        envs = torch.nonzero(done).flatten().tolist()
        if not envs:
            return new
        state = new.clone()
        state[:, envs] = self._gymnasium_noise(envs)
        return state


def physics_step(params: spec.Params, physics: Tensor, actions: Tensor) -> Tensor:
    """`spec.envs.cartpole.accelerations` then `integrate`, over a `[4, N]` state; a new tensor.

    The constants are folded so that each quantity costs one or two tensor operations; the
    results differ from the spec's by a few units in the last place.
    """
    theta, theta_dot = physics[2], physics[3]
    total, pml, half = params.total_mass, params.polemass_length, params.half_length
    costheta = torch.cos(theta)
    sintheta = torch.sin(theta)
    # temp = (force + m_p l theta_dot^2 sin(theta)) / (m_c + m_p), force = (2 a - 1) force_mag
    temp = actions.to(physics.dtype).mul_(2.0 * params.force_mag / total)
    temp.sub_(params.force_mag / total).addcmul_(theta_dot * theta_dot, sintheta, value=pml / total)
    # theta_acc = (g sin - cos temp) / (l (4/3 - m_p cos^2 / (m_c + m_p))), both sides negated
    minus_denominator = torch.mul(costheta, costheta).mul_(params.mass_pole / total * half)
    minus_denominator.sub_(4.0 / 3.0 * half)
    acc = torch.empty_like(physics[:2])
    minus_numerator = torch.mul(costheta, temp).sub_(sintheta, alpha=params.gravity)
    torch.div(minus_numerator, minus_denominator, out=acc[1])
    # x_acc = temp - m_p l theta_acc cos / (m_c + m_p)
    torch.addcmul(temp, acc[1], costheta, value=-pml / total, out=acc[0])
    new = torch.empty_like(physics)
    positions, velocities = physics[0::2], physics[1::2]
    if params.integrator == "euler":
        torch.add(positions, velocities, alpha=params.tau, out=new[0::2])
        torch.add(velocities, acc, alpha=params.tau, out=new[1::2])
    else:
        torch.add(velocities, acc, alpha=params.tau, out=new[1::2])
        torch.add(positions, new[1::2], alpha=params.tau, out=new[0::2])
    return new


def is_terminated(thresholds: Tensor, physics: Tensor) -> Tensor:
    """`[N]` bool: |x| > x_threshold or |theta| > theta_threshold (`spec...is_terminated`).

    `thresholds` is `[[x_threshold], [theta_threshold]]`; x and theta are compared in one
    operation. NaN entries never terminate, as in the spec.
    """
    beyond = physics[0::2].abs() > thresholds
    return beyond[0] | beyond[1]


def select_bits(keep: Tensor, kept: Tensor, fresh: Tensor) -> Tensor:
    """`[4, N]`: column `i` of `kept` where `keep[i]` has all bits set, of `fresh` where it is 0.

    `torch.where` for a mask of integers of the floats' width (all ones or all zeros), as bit
    operations: exact for every value, NaN and infinities included, and cheaper on CPU.
    """
    kept_bits = kept.view(keep.dtype)
    fresh_bits = fresh.view(keep.dtype)
    chosen = torch.bitwise_xor(kept_bits, fresh_bits).bitwise_and_(keep).bitwise_xor_(fresh_bits)
    return chosen.view(kept.dtype)


def rewards(params: spec.Params, terminated: Tensor, dtype: torch.dtype) -> Tensor:
    """`[N]`: `spec.envs.cartpole.reward` for each copy, in `dtype`."""
    if params.sutton_barto_reward:
        return torch.zeros(terminated.shape, dtype=dtype, device=terminated.device).sub_(
            terminated.to(dtype)
        )
    return torch.ones(terminated.shape, dtype=dtype, device=terminated.device)
