"""N CartPoles stepped together as tensors: the batched twin of `spec.envs.cartpole`.

The physics is `spec.envs.cartpole` (itself Gymnasium's CartPole-v1) applied elementwise to a
`[4, N]` state, one row per physical quantity so that every operation runs over contiguous
memory. Each copy counts its steps and is truncated after `params.max_episode_steps`; copies that
terminate or are truncated are reset in the same step (see `runtime.envs.base`).

Two sources of reset noise:

- `reset_noise="torch"` (default): every entry uniform on a grid of 2^16 points spanning
  `[-reset_bound, reset_bound)`, from a `torch.Generator` on the environment's device seeded by
  `reset(seed)` (see `CartPole._draw_grid` and `reset_state`). Fresh noise for all copies is
  drawn on every step and used where a copy is done, so stepping never waits for the device.
- `reset_noise="gymnasium"`: copy `i` owns `np.random.default_rng(seed + i)` and draws each of
  its initial states from it exactly as Gymnasium's `CartPoleEnv.reset` does, auto-resets
  included. A torch environment, `N` spec environments and `N` Gymnasium environments seeded
  alike then start every episode in the same float64 state. This mode reads the done flags on
  the host at every step; it is for cross-checking, not for speed.

Three engines step the copies (`CartPole.engine`), chosen by default by device and size:

- `"numpy"`: on the CPU below `HOST_MAX_ENVS` copies, NumPy arithmetic on the memory of the
  state tensors (`cartpole_host.host_advance`): a torch operation on a small tensor costs
  several times a NumPy ufunc, and nothing needs compiling;
- `"compiled"`: on the CPU from `COMPILE_MIN_ENVS` copies up with torch reset noise, one
  TorchInductor-compiled function (`cartpole_step.fused_advance`: a few fused loops instead of
  about thirty tensor operations); `compiled=True` compiles at any size and with either noise;
- `"eager"`: torch operations (`cartpole_step.eager_advance`), elsewhere (CUDA, Gymnasium
  noise from `COMPILE_MIN_ENVS` up) and with `compiled=False`.

The noise is drawn outside them, so a seed gives the same episodes whichever steps. None is
threaded by default (`threads`, and the thread policy in `runtime.envs.cartpole_step`).

The state tensors are never modified in place: observations handed out stay valid snapshots.

Source: gymnasium/envs/classic_control/cartpole.py (`CartPoleEnv`, `CartPoleVectorEnv`).
"""

import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from checked_rl.runtime.envs import cartpole_step
from checked_rl.runtime.envs.base import (
    EnvStep,
    check_actions,
    check_state,
    checked_device,
    numpy_generator,
    plain_params,
)
from checked_rl.runtime.envs.cartpole_host import HOST_MAX_ENVS, constants, numpy_advance
from checked_rl.runtime.envs.cartpole_step import COMPILE_ERRORS, eager_advance, reset_state
from checked_rl.runtime.shapes import typechecked
from checked_rl.spec.envs import cartpole as spec

ResetNoise = Literal["torch", "gymnasium"]
RESET_NOISES: tuple[ResetNoise, ...] = ("torch", "gymnasium")
Engine = Literal["numpy", "eager", "compiled"]

Physics = Float[Tensor, "N 4"]
StepCounts = Int[Tensor, " N"]

COMPILE_MIN_ENVS = 1024
"""From this many copies up, CPU environments step through `fused_advance` by default.

Compiling costs seconds for each parameter set, dtype and batch size (less with inductor's
on-disk cache warm), which small environments, typically many and short-lived (tests,
evaluation, a short `make train`), would pay again and again; below this size they step in
NumPy (`cartpole_host.HOST_MAX_ENVS`), as fast as the compiled step there without compiling
(the numbers: docs/guides/performance.md). `compiled=True` compiles at any size."""

__all__ = [
    "COMPILE_ERRORS",
    "COMPILE_MIN_ENVS",
    "HOST_MAX_ENVS",
    "RESET_NOISES",
    "CartPole",
    "Engine",
    "ResetNoise",
]


class CartPole:
    """`num_envs` CartPole-v1 copies on one device; implements `runtime.envs.base.BatchedEnv`.

    Args:
        num_envs: the number of copies N.
        params: the spec parameters (integrator, reward variant, time limit, ...).
        device: where the state lives.
        dtype: the dtype of the state, the observations and the rewards (float32 or float64).
        reset_noise: "torch" or "gymnasium", see the module docstring.
        seed: if given, the constructor's reset is seeded with it.
        compiled: True: step through the compiled `cartpole_step.fused_advance`; False: through
            torch operations (`"eager"`); None (default): choose the engine by device and size
            (module docstring; `engine` says which). If the step cannot be compiled
            (`COMPILE_ERRORS`), the environment warns and steps eagerly from then on.
        threads: OpenMP threads of the compiled CPU step, 1 by default: no parallel region,
            so a step never waits for a core another process holds. More threads are faster
            only on cores nothing else wants (see docs/guides/performance.md, "Threads").
            The eager step is never threaded on the CPU (`cartpole_step.eager_advance`), and
            torch's global settings are left alone.
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
        compiled: bool | None = None,
        threads: int = 1,
    ) -> None:
        self.device = checked_device("CartPole", num_envs, dtype, device)
        if reset_noise not in RESET_NOISES:
            raise ValueError(
                f"CartPole: reset_noise must be one of {RESET_NOISES}, got {reset_noise!r}"
            )
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"CartPole: threads must be a positive int, got {threads!r}")
        self.num_envs = num_envs
        self.threads = threads
        self.params = spec.Params() if params is None else params
        self.dtype = dtype
        self.reset_noise = reset_noise
        self.engine: Engine = "compiled" if compiled else "eager"
        if compiled is None and self.device.type == "cpu":
            if num_envs < HOST_MAX_ENVS:
                self.engine = "numpy"
            elif num_envs >= COMPILE_MIN_ENVS and reset_noise == "torch":
                self.engine = "compiled"
        self.compiled = self.engine == "compiled"
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
        thresholds = [[self.params.x_threshold], [self.params.theta_threshold]]
        self._thresholds = torch.tensor(thresholds, dtype=dtype, device=self.device)
        # Step counts: int32 beside float32 states (less memory traffic), int64 beside float64.
        self._int = torch.int32 if dtype == torch.float32 else torch.int64
        self._bits = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        if self.engine == "numpy":  # NumPy views of the same memory and constants, made once
            self._host_thresholds = self._thresholds.numpy()
            self._host_grid = self._bits.numpy().view(np.int16).reshape(4, num_envs)
            counts = torch.zeros(0, dtype=self._int).numpy().dtype
            self._host_constants = constants(self.params, self._host_thresholds.dtype, counts)
        self._host_state: tuple[Any, ...] = (None, None, None, None)
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
            self._physics = reset_state(self.params, self._draw_grid(), self.dtype)
        else:
            if seed is not None:
                self._rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]
            self._physics = self._gymnasium_noise(range(self.num_envs))
        self._steps = torch.zeros(self.num_envs, dtype=self._int, device=self.device)
        return self.observe()

    def observe(self) -> Float[Tensor, "N 4"]:
        """The current observations `[N, 4]` (the reset observation where a copy just ended).

        Not `@typechecked`: sessions call it on every step, and the shape holds by construction.
        """
        return self._physics.t()

    def step(self, actions: Tensor) -> EnvStep:
        """Push copy `i` left (`actions[i] == 0`) or right (`1`); auto-reset the copies done.

        `actions` must be an int64 tensor of shape `[N]` on the environment's device; its shape,
        dtype and device are checked on every call (cheaply, without jaxtyping), its values are
        not: an action other than 0 and 1 gives a force of `(2 a - 1) force_mag`.
        """
        check_actions("CartPole.step", actions, self.num_envs, self.device)
        if self.engine == "numpy":
            return self._host_step(actions)
        state = (self._thresholds, self._physics, self._steps)
        torch_noise = self.reset_noise == "torch"
        # Gymnasium noise: the compiled step gets an all-zero grid (`_bits` is never drawn
        # from), whose reset states are discarded below; the others get none.
        grid = self._draw_grid() if torch_noise else None
        fused = self._fused() if self.compiled else None
        if fused is not None:
            zeros = self._bits.view(torch.int16).view(4, -1)
            outcome = fused(*state, actions.contiguous(), zeros if grid is None else grid)
        else:
            outcome = eager_advance(self.params, *state, actions, grid, self.dtype)
        new, reward, terminated, truncated, following, self._steps = outcome
        terminated, truncated = terminated.bool(), truncated.bool()  # no-ops when eager
        if not torch_noise:
            following = self._gymnasium_reset_where(terminated | truncated, new)
        self._physics = following
        return EnvStep(new.t(), reward, terminated, truncated)

    def _host_step(self, actions: Tensor) -> EnvStep:
        """`step` by the NumPy engine (`cartpole_host.numpy_advance`) on the memory of the state
        tensors; the reset grid is drawn as `_draw_grid` draws it, into the same memory."""
        grid = None
        if self.reset_noise == "torch":
            self._bits.random_(-(2**63), None, generator=self._generator)
            grid = self._host_grid
        # The arrays under the state tensors, kept from the last step unless they were replaced.
        physics_tensor, physics, steps_tensor, steps = self._host_state
        if physics_tensor is not self._physics or steps_tensor is not self._steps:
            physics, steps = self._physics.numpy(), self._steps.numpy()
        known, thresholds = self._host_constants, self._host_thresholds
        outcome = numpy_advance(
            self.params, known, thresholds, physics, steps, actions.numpy(), grid
        )
        new, reward, terminated, truncated, following, steps = outcome
        tensor = torch.from_numpy
        step = EnvStep(tensor(new.T), tensor(reward), tensor(terminated), tensor(truncated))
        self._physics, self._steps = tensor(following), tensor(steps)
        if grid is None:
            done = step.terminated | step.truncated
            self._physics = self._gymnasium_reset_where(done, self._physics)
            following = self._physics.numpy()
        self._host_state = (self._physics, following, self._steps, steps)
        return step

    def _fused(self) -> Callable[..., cartpole_step.Outcome] | None:
        """The compiled step for this environment, or None (after a warning) if compiling
        failed with one of `COMPILE_ERRORS`; only compiling is tried, the step's errors
        surface."""
        try:
            return cartpole_step.fused_advance(
                self.params, self.dtype, self.num_envs, self.device, self.threads
            )
        except COMPILE_ERRORS as error:
            failed = f"CartPole: compiling the step failed ({type(error).__name__}: {error})"
            warnings.warn(f"{failed}; stepping eagerly from now on", RuntimeWarning, 3)
            self.compiled, self.engine = False, "eager"
            return None

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs as plain data: `physics` and `steps` (`get_state`),
        the reset noise's torch `generator` state (uint8) or per-copy NumPy `rngs` states, and
        what `load_state_dict` requires to match (copies, dtype, reset noise, params, device)."""
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
        other = ("generator",) if torch_noise else ()
        check_state("CartPole.load_state_dict", state, self._identity(), per_copy, other)
        self.set_state(state["physics"].to(self.device), state["steps"].to(self.device))
        if torch_noise:
            self._generator.set_state(state["generator"].cpu())
        else:
            self._rngs = [numpy_generator(saved) for saved in state["rngs"]]

    @typechecked
    def get_state(self) -> tuple[Physics, StepCounts]:
        """Copies of the physics `[N, 4]` (x, x_dot, theta, theta_dot) and step counts `[N]`."""
        return self._physics.t().clone(), self._steps.to(torch.int64, copy=True)

    @typechecked
    def set_state(self, physics: Physics, steps: StepCounts) -> None:
        """Overwrite every copy's physics `[N, 4]` and step count `[N]` (for properties)."""
        if physics.shape[0] != self.num_envs:
            raise ValueError(
                f"CartPole.set_state: expected physics for {self.num_envs} copies, "
                f"got shape {tuple(physics.shape)}"
            )
        self._physics = torch.empty_like(self._physics).copy_(physics.t())
        self._steps = steps.to(self.device, self._int, copy=True).contiguous()

    def _identity(self) -> dict[str, Any]:
        """What a state must share with this environment to be loaded into it."""
        identity = {"num_envs": self.num_envs, "dtype": str(self.dtype)}
        identity |= {"reset_noise": self.reset_noise, "params": plain_params(self.params)}
        if self.reset_noise == "torch":  # a CPU generator's state does not fit a CUDA one
            identity["generator_device"] = self.device.type
        return identity

    def _draw_grid(self) -> Tensor:
        """`[4, N]` int16: one 64-bit draw per copy from the torch generator, as four integers.

        Each `k` is uniform in `[-2^15, 2^15)`; `reset_state` turns it into a reset state. One
        64-bit draw per copy costs about a quarter of the generator time of four float draws,
        and reset noise is drawn for every copy at every step.
        """
        self._bits.random_(-(2**63), None, generator=self._generator)
        return self._bits.view(torch.int16).view(4, self.num_envs)

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
