"""What the batched classic-control twins (Acrobot, MountainCar, MountainCarContinuous, Pendulum)
share: N copies as a `[P, N]` float tensor (one row per physical quantity), step counts, the
same-step auto-reset, the two sources of reset noise and the state.

A subclass says which spec module it twins (`spec`), how to step the physics (`advance`) and how
to observe it (`observation`); `ClassicControl` does the rest and implements
`runtime.envs.base.BatchedEnv`, with `get_state`/`set_state` for properties.

Reset noise:

- `reset_noise="torch"` (default): every copy's reset state is drawn uniformly from the spec's
  reset box (`reset_box`) with a `torch.Generator` on the environment's device, seeded by
  `reset(seed)`. Fresh states for all copies are drawn at every step and used where a copy is
  done, so stepping never waits for the device.
- `reset_noise="gymnasium"`: copy `i` owns `np.random.default_rng(seed + i)` and draws each of
  its reset states from it with the spec's `reset`, which is Gymnasium's draw: N twins, N spec
  environments and N `gym.make(id)` seeded alike start every episode in the same float64 state.
  This mode reads the done flags on the host at every step; it is for cross-checking.

Continuous twins take actions `[N, *action_shape]` of any float dtype, as given: they clip
them into the action box themselves (and charge the unclipped action where upstream does).

The state tensors are never modified in place: observations handed out stay valid snapshots.
"""

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from checked_rl.runtime.envs.base import (
    EnvStep,
    check_actions,
    check_state,
    checked_device,
    numpy_generator,
    plain_params,
)

ResetNoise = Literal["torch", "gymnasium"]
RESET_NOISES: tuple[ResetNoise, ...] = ("torch", "gymnasium")


class ClassicControl:
    """`num_envs` copies of one classic-control environment on one device.

    Args:
        num_envs: the number of copies N.
        params: the spec parameters (default: the spec's `Params()`, the Gymnasium values).
        device: where the state lives.
        dtype: the dtype of the physics, observations and rewards (float32 or float64).
        reset_noise: "torch" or "gymnasium", see the module docstring.
        seed: if given, the constructor's reset is seeded with it.
    """

    spec: ClassVar[ModuleType]
    physics_names: ClassVar[tuple[str, ...]]
    observation_shape: tuple[int, ...]
    n_actions: int | None = None
    action_shape: tuple[int, ...] | None = None

    def __init__(
        self,
        num_envs: int,
        params: Any = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        reset_noise: ResetNoise = "torch",
        seed: int | None = None,
    ) -> None:
        owner = type(self).__name__
        self.device = checked_device(owner, num_envs, dtype, device)
        if reset_noise not in RESET_NOISES:
            raise ValueError(
                f"{owner}: reset_noise must be one of {RESET_NOISES}, got {reset_noise!r}"
            )
        self.num_envs = num_envs
        self.params = self.spec.Params() if params is None else params
        if not isinstance(self.params, self.spec.Params):
            raise ValueError(f"{owner}: params must be {self.spec.__name__}.Params, got {params!r}")
        self.dtype = dtype
        self.reset_noise = reset_noise
        self.action_box = None if self.action_shape is None else self.spec.action_space(self.params)
        low, high = self.spec.observation_bounds(self.params)
        self.observation_low: Tensor | None = self.tensor(low)
        self.observation_high: Tensor | None = self.tensor(high)
        box_low, box_high = self.reset_box()
        self._reset_low = self.tensor(box_low).reshape(-1, 1)
        self._reset_span = self.tensor(np.subtract(box_high, box_low)).reshape(-1, 1)
        self._generator = torch.Generator(device=self.device)
        self._generator.seed()
        copies = range(num_envs if reset_noise == "gymnasium" else 0)
        self._rngs = [np.random.default_rng() for _ in copies]
        self._physics = torch.zeros(
            len(self.physics_names), num_envs, dtype=dtype, device=self.device
        )
        self._steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        self.reset(seed)

    def tensor(self, values: Any) -> Tensor:
        """`values` as a tensor of the environment's dtype on its device."""
        return torch.as_tensor(
            np.asarray(values, dtype=np.float64), dtype=self.dtype, device=self.device
        )

    # What a subclass provides.

    def reset_box(self) -> tuple[Sequence[float], Sequence[float]]:
        """`(low, high)` per physical quantity: torch reset noise is uniform in `[low, high)`."""
        raise NotImplementedError

    def advance(self, physics: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`(new [P, N], reward [N], terminated [N] bool)`: one step of the physics."""
        raise NotImplementedError

    def observation(self, physics: Tensor) -> Tensor:
        """`[N, *obs]`: the observations of `physics` `[P, N]`."""
        raise NotImplementedError

    def round_reset(self, fresh: Tensor) -> Tensor:
        """Reset states `[P, K]` as the spec stores them (identity unless overridden)."""
        return fresh

    def gymnasium_reset(self, env: int) -> np.ndarray:
        """Copy `env`'s next float64 reset physics, drawn with the spec's `reset`."""
        state, _ = self.spec.reset(self.params, self._rngs[env])
        return state.physics()

    # The BatchedEnv protocol.

    def reset(self, seed: int | None = None) -> Tensor:
        """Reset every copy (reseeding first when `seed` is given); return the observations.

        With `reset_noise="gymnasium"`, copy `i` is reseeded with `seed + i`.
        """
        if self.reset_noise == "torch":
            if seed is not None:
                self._generator.manual_seed(seed)
            self._physics = self._torch_resets()
        else:
            if seed is not None:
                self._rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]
            self._physics = self._gymnasium_resets(range(self.num_envs))
        self._steps = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._observation = self.observation(self._physics)
        return self._observation

    def observe(self) -> Tensor:
        """The current observations `[N, *obs]` (the reset observation where a copy just ended)."""
        return self._observation

    def step(self, actions: Tensor) -> EnvStep:
        """Apply one action per copy; auto-reset the copies that are done.

        Discrete: `actions` is `[N]` int64 (values are not checked: sessions check them).
        Continuous: `[N, *action_shape]` of a float dtype, used as given (clipped here).
        """
        self._check_actions(actions)
        new, reward, terminated = self.advance(self._physics, actions)
        steps = self._steps + 1
        limit = self.params.max_episode_steps
        truncated = torch.zeros_like(terminated) if limit is None else steps >= limit
        done = terminated | truncated
        if self.reset_noise == "torch":
            following = torch.where(done, self._torch_resets(), new)
        else:
            envs = torch.nonzero(done).flatten().tolist()
            following = new
            if envs:
                following = new.clone()
                following[:, envs] = self._gymnasium_resets(envs)
        self._physics = following
        self._steps = torch.where(done, 0, steps)
        next_observation = self.observation(new)
        self._observation = (
            next_observation
            if following is new
            else torch.where(self._row_mask(done), self.observation(following), next_observation)
        )
        return EnvStep(next_observation, reward, terminated, truncated)

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs as plain data: `physics` and `steps` (`get_state`),
        the torch `generator` state or the per-copy NumPy `rngs` states, and what
        `load_state_dict` requires to match (copies, dtype, reset noise, params, device)."""
        physics, steps = self.get_state()
        state = {**self._identity(), "physics": physics, "steps": steps}
        if self.reset_noise == "torch":
            state["generator"] = self._generator.get_state()
        else:
            state["rngs"] = [rng.bit_generator.state for rng in self._rngs]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly from `state` (from `state_dict`); a one-line ValueError names what
        does not fit: a missing entry, the number of copies, dtype, reset noise, params."""
        torch_noise = self.reset_noise == "torch"
        per_copy = ("physics", "steps") if torch_noise else ("physics", "steps", "rngs")
        owner = f"{type(self).__name__}.load_state_dict"
        check_state(owner, state, self._identity(), per_copy, ("generator",) if torch_noise else ())
        self.set_state(state["physics"].to(self.device), state["steps"].to(self.device))
        if torch_noise:
            self._generator.set_state(state["generator"].cpu())
        else:
            self._rngs = [numpy_generator(saved) for saved in state["rngs"]]

    def get_state(self) -> tuple[Tensor, Tensor]:
        """Copies of the physics `[N, P]` (rows named by `physics_names`) and step counts `[N]`."""
        return self._physics.t().clone(), self._steps.clone()

    def set_state(self, physics: Tensor, steps: Tensor) -> None:
        """Overwrite every copy's physics `[N, P]` and step count `[N]` (for properties)."""
        expected = (self.num_envs, len(self.physics_names))
        if tuple(physics.shape) != expected or tuple(steps.shape) != (self.num_envs,):
            raise ValueError(
                f"{type(self).__name__}.set_state: expected physics of shape {expected} and "
                f"steps of shape ({self.num_envs},), got {tuple(physics.shape)} and "
                f"{tuple(steps.shape)}"
            )
        self._physics = physics.t().to(self.device, self.dtype).contiguous()
        self._steps = steps.to(self.device, torch.int64).clone()
        self._observation = self.observation(self._physics)

    # Helpers.

    def _check_actions(self, actions: Tensor) -> None:
        owner = f"{type(self).__name__}.step"
        if self.action_shape is None:
            check_actions(owner, actions, self.num_envs, self.device)
            return
        shape = (self.num_envs, *self.action_shape)
        if (
            tuple(actions.shape) != shape
            or not actions.is_floating_point()
            or actions.device != self.device
        ):
            raise ValueError(
                f"{owner}: expected actions of shape {shape} and a float dtype on {self.device}, "
                f"got shape {tuple(actions.shape)}, dtype {actions.dtype} on {actions.device}"
            )

    def _torch_resets(self) -> Tensor:
        """`[P, N]` fresh reset states from the torch generator."""
        uniform = torch.rand(
            self._physics.shape, generator=self._generator, dtype=self.dtype, device=self.device
        )
        return self.round_reset(torch.addcmul(self._reset_low, uniform, self._reset_span))

    def _gymnasium_resets(self, envs: Sequence[int]) -> Tensor:
        """`[P, len(envs)]`: the spec's reset draw from each listed copy's generator."""
        draws = np.stack([self.gymnasium_reset(i) for i in envs], axis=1)
        return torch.from_numpy(draws).to(self.device, self.dtype)

    def _row_mask(self, done: Tensor) -> Tensor:
        """`done` `[N]` shaped to select whole observations `[N, *obs]`."""
        return done.reshape(-1, *([1] * len(self.observation_shape)))

    def _identity(self) -> dict[str, Any]:
        """What a state must share with this environment to be loaded into it."""
        identity = {"num_envs": self.num_envs, "dtype": str(self.dtype)}
        identity |= {"reset_noise": self.reset_noise, "params": plain_params(self.params)}
        if self.reset_noise == "torch":  # a CPU generator's state does not fit a CUDA one
            identity["generator_device"] = self.device.type
        return identity
