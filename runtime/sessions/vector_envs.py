"""A checked session over any Gymnasium `VectorEnv`, in any of its three autoreset modes.

Gymnasium's vector environments reset finished copies in one of three ways
(`metadata["autoreset_mode"]`; next-step when a vector environment does not say):

- `SAME_STEP`: `step` returns the reset observations, the true final ones in
  `infos["final_obs"]`; the session takes `next_observation` from there.
- `NEXT_STEP`: `step` returns the final observations and the next `step` would reset the copy,
  ignoring its action (a wasted step); `DISABLED`: the caller must reset it. In both, the
  session resets the finished copies at once with `reset(options={"reset_mask": done})`
  (unseeded, each copy continuing its own generator).

Either way the session has the semantics of every checked session: same-step auto-reset, no
transition mixing two episodes, no step wasted, and for the same seeds and actions the same
transitions as the in-process `gymnasium` session (copy i seeded `seed + i`). Observations are
copied out of the vector environment's buffers, which it may reuse between steps. The
environments are arbitrary Python objects, so the session cannot capture their state.
"""

import importlib
from typing import Any, Self

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import Tensor

from checked_rl.runtime.contract import Contract, check_host_observations, real_reward
from checked_rl.runtime.env_names import make_environment
from checked_rl.runtime.envs.base import EnvStep
from checked_rl.runtime.sessions.base import (
    CheckedSession,
    EnvironmentStepError,
    host_env_step,
)

__all__ = ["AUTORESET_MODES", "VECTORIZATION_MODES", "VectorSession"]

AUTORESET_MODES = {
    "next-step": AutoresetMode.NEXT_STEP,
    "same-step": AutoresetMode.SAME_STEP,
    "disabled": AutoresetMode.DISABLED,
}
"""The autoreset modes by the names `VectorSession.from_id` takes (Gymnasium's values too)."""

VECTORIZATION_MODES = ("sync", "async", "vector_entry_point")
"""How `VectorSession.from_id` builds the vector environment (`gymnasium.make_vec`)."""


class VectorSession(CheckedSession):
    """A Gymnasium `VectorEnv` behind the checked-session protocol, on the CPU.

    The session owns the vector environment: `close` closes it.

    Args:
        vector_env: a `gymnasium.vector.VectorEnv` with `Box` single observations and
            `Discrete` single actions; NEXT_STEP and DISABLED ones must accept
            `reset(options={"reset_mask": ...})` (Gymnasium's own do).
        reward_dtype: the floating dtype of rewards (float32 unless set).
        contract: the contract (default: `Contract.from_spaces` of the single spaces).
    """

    kind = "gymnasium-vector"
    cpu_only = True
    takes_gymnasium_ids = True
    uncaptured = "Gymnasium environments (arbitrary Python objects, in a vector environment)"

    def __init__(
        self,
        vector_env: VectorEnv,
        *,
        reward_dtype: torch.dtype = torch.float32,
        contract: Contract | None = None,
    ) -> None:
        if not isinstance(vector_env, VectorEnv):
            raise ValueError(
                f"VectorSession: expected a gymnasium.vector.VectorEnv, got "
                f"{type(vector_env).__name__}"
            )
        mode = vector_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if not isinstance(mode, AutoresetMode):
            raise ValueError(
                f"VectorSession: metadata['autoreset_mode'] must be a gymnasium.vector."
                f"AutoresetMode, got {mode!r}"
            )
        contract = contract or Contract.from_spaces(
            vector_env.single_observation_space, vector_env.single_action_space
        )
        super().__init__(contract, vector_env.num_envs, "cpu")
        self.vector_env = vector_env
        self.autoreset_mode = mode
        self.reward_dtype = reward_dtype
        spec = vector_env.spec
        self.name = spec.id if spec is not None else type(vector_env).__name__
        self._rows: list[np.ndarray] = []

    @classmethod
    def from_id(
        cls,
        env_id: str,
        num_envs: int = 1,
        *,
        vectorization_mode: str | None = None,
        autoreset_mode: str | AutoresetMode | None = None,
        make_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """`gymnasium.make_vec(env_id, num_envs, vectorization_mode, **make_kwargs)`.

        `vectorization_mode`: "sync", "async" or "vector_entry_point"; None (default): the
        id's vector entry point where it has one (the `checked_rl/<Id>` ones), else "sync".
        `autoreset_mode` ("next-step", Gymnasium's default when None, "same-step" or
        "disabled") is passed to the sync and async vector environments; a vector entry point
        has its own (the `checked_rl/<Id>` ones: same-step), so giving one is an error.
        """
        if num_envs < 1:
            raise ValueError(f"VectorSession.from_id: num_envs must be at least 1, got {num_envs}")
        if vectorization_mode is None:
            registered_id = env_id
            if ":" in env_id:  # `module:Id`: importing the module registers the id
                module_name, _, registered_id = env_id.partition(":")
                importlib.import_module(module_name)
            has_entry = gymnasium.spec(registered_id).vector_entry_point is not None
            vectorization_mode = "vector_entry_point" if has_entry else "sync"
        if vectorization_mode not in VECTORIZATION_MODES:
            raise ValueError(
                f"VectorSession.from_id: vectorization_mode must be one of "
                f"{list(VECTORIZATION_MODES)}, got {vectorization_mode!r}"
            )
        vector_kwargs = {}
        if vectorization_mode != "vector_entry_point":
            vector_kwargs["autoreset_mode"] = _autoreset_mode(autoreset_mode or "next-step")
        elif autoreset_mode is not None:
            raise ValueError(
                f"VectorSession.from_id: {env_id} is made by its vector entry point, which has "
                f"its own autoreset mode; autoreset_mode={autoreset_mode!r} applies to "
                f"vectorization_mode 'sync' or 'async'"
            )
        vector_env = make_environment(
            env_id,
            lambda: gymnasium.make_vec(
                env_id,
                num_envs=num_envs,
                vectorization_mode=vectorization_mode,
                vector_kwargs=vector_kwargs,
                **(make_kwargs or {}),
            ),
        )
        return cls(vector_env, **options)

    def _reset(self, seed: int | None) -> Tensor:
        observations, _ = self._call(None, "reset", lambda env: env.reset(seed=seed))
        self._rows = self._split(observations)
        return self._observe()

    def _step(self, actions: Tensor, step: int) -> EnvStep:
        env_actions = actions.numpy().astype(self.vector_env.single_action_space.dtype)
        observations, rewards, terminated, truncated, infos = self._call(
            step, "step", lambda env: env.step(env_actions)
        )
        rows = self._split(observations)
        terminated = [bool(flag) for flag in np.asarray(terminated).reshape(self.num_envs)]
        truncated = [bool(flag) for flag in np.asarray(truncated).reshape(self.num_envs)]
        done = np.logical_or(terminated, truncated)
        finals = list(rows)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            for i in np.flatnonzero(done).tolist():
                finals[i] = self._final_observation(infos, i, step)
        elif done.any():
            reset, _ = self._call(
                step, "reset of the finished copies",
                lambda env: env.reset(options={"reset_mask": done.copy()}),
            )
            fresh = self._split(reset)
            rows = [fresh[i] if done[i] else row for i, row in enumerate(rows)]
        self._rows = rows
        rewards = np.asarray(rewards).reshape(self.num_envs).tolist()
        return host_env_step(
            self.contract,
            finals,
            [real_reward(reward, env=i, step=step) for i, reward in enumerate(rewards)],
            terminated,
            truncated,
            reward_dtype=self.reward_dtype,
            step=step,
        )

    def _observe(self) -> Tensor:
        return check_host_observations(self.contract, self._rows, field="observation", step=None)

    def _close(self) -> None:
        self.vector_env.close()

    def _final_observation(self, infos: dict[str, Any], i: int, step: int) -> np.ndarray:
        """Copy i's true final observation from a same-step `infos`, or a one-line error."""
        finals, mask = infos.get("final_obs"), infos.get("_final_obs")
        if finals is None or mask is None or not bool(mask[i]):
            raise EnvironmentStepError(
                f"{self.name} (same-step autoreset) ended copy {i} at step {step} without its "
                f"final observation in infos['final_obs']"
            )
        return _host_array(finals[i])

    def _split(self, observations: Any) -> list[np.ndarray]:
        """The batch as one fresh host array per copy (never a view of the env's buffers)."""
        batch = _host_array(observations)
        if batch.ndim < 1 or batch.shape[0] != self.num_envs:
            raise EnvironmentStepError(
                f"{self.name}: expected observations for {self.num_envs} copies, got shape "
                f"{batch.shape}"
            )
        return [row.copy() for row in batch]

    def _call(self, step: int | None, what: str, call: Any) -> Any:
        """`call(vector_env)`, wrapping any exception in `EnvironmentStepError`."""
        try:
            return call(self.vector_env)
        except Exception as error:
            at = "" if step is None else f" at step {step}"
            raise EnvironmentStepError(
                f"{self.name} raised in {what}{at}: {type(error).__name__}: {error}"
            ) from error


def _autoreset_mode(name: str | AutoresetMode) -> AutoresetMode:
    """`name` (a key of `AUTORESET_MODES` or Gymnasium's value) as an `AutoresetMode`."""
    if isinstance(name, AutoresetMode):
        return name
    if name in AUTORESET_MODES:
        return AUTORESET_MODES[name]
    try:
        return AutoresetMode(name)
    except ValueError:
        raise ValueError(
            f"VectorSession.from_id: autoreset_mode must be one of {list(AUTORESET_MODES)}, "
            f"got {name!r}"
        ) from None


def _host_array(value: Any) -> np.ndarray:
    """`value` (a NumPy array, a torch tensor, a list) as a NumPy array on the host."""
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
