"""The runtime environments as Gymnasium vector environments: `checked_rl/<Id>` for `make_vec`.

After `import checked_rl`, every environment of `runtime.sessions.TORCH_ENVIRONMENTS` is
registered with Gymnasium as `checked_rl/<Id>` with a vector entry point
(`runtime.env_registry.register_vector_envs`), so

    gymnasium.make_vec("checked_rl/CartPole-v1", 8, vectorization_mode="vector_entry_point")

(or `"checked_rl:checked_rl/CartPole-v1"` without importing `checked_rl` first) gives a
`BatchedVectorEnv`: a `gymnasium.vector.VectorEnv` with same-step autoreset
(`metadata["autoreset_mode"] = AutoresetMode.SAME_STEP`): `step` returns the observations to act
on next, the reset observations where an episode just ended, and the true final observations in
`infos["final_obs"]` (an object array, set where `infos["_final_obs"]` is True), with
`infos["final_info"]`, as Gymnasium's `SyncVectorEnv` does in that mode.

Keyword arguments of `make_vec` (all optional):

- `reset_noise`: `"torch"` (default) steps the batched torch environment, on `device` in
  `dtype`; `"gymnasium"` steps the spec environments, Gymnasium's own arithmetic and generators
  (copy `i` seeded `seed + i`, auto-resets drawn from its generator), on the host: the result is
  `SyncVectorEnv` over `gymnasium.make(Id)` copies in `SAME_STEP` mode, bit for bit. (The torch
  twin with Gymnasium's noise starts every episode in the same state but rounds differently in
  the last float64 bits, which an unstable system like CartPole amplifies over long episodes.)
- `device`, `dtype`: for `reset_noise="torch"` (CPU, float32 by default).
- `array_type`: `"numpy"` (default) returns NumPy arrays; `"torch"` returns torch tensors on
  `device` (observations, rewards, flags and the rows of `final_obs`).
- any field of the spec environment's `Params` (e.g. `max_episode_steps`).

Every step passes the environment's contract (the vector environment is a checked session
underneath); a violation raises `ContractViolation`.
"""

from typing import Any, Literal

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from checked_rl.runtime.contract import to_numpy, torch_dtype
from checked_rl.runtime.env_registry import SPEC_ENVIRONMENTS
from checked_rl.runtime.sessions import CheckedSession, make_session

__all__ = ["BatchedVectorEnv", "make_vector_env"]

ArrayType = Literal["numpy", "torch"]


class BatchedVectorEnv(VectorEnv):
    """A checked session behind Gymnasium's `VectorEnv` interface (same-step autoreset).

    Args:
        session: a session with same-step auto-reset (every `runtime.sessions` kind has it);
            the vector environment owns it: `close` closes it.
        array_type: `"numpy"` or `"torch"`, the type of returned arrays.
        observation_dtype: NumPy dtype of the returned observations (default: the contract's).
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 - Gymnasium's class attribute
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": [],
    }

    def __init__(
        self,
        session: CheckedSession,
        *,
        array_type: ArrayType = "numpy",
        observation_dtype: Any = None,
    ) -> None:
        if array_type not in ("numpy", "torch"):
            raise ValueError(
                f"BatchedVectorEnv: array_type must be 'numpy' or 'torch', got {array_type!r}"
            )
        contract = session.contract
        dtype = np.dtype(observation_dtype or contract.observation_dtype)
        shape = contract.observation_shape
        low = -np.inf if contract.observation_low is None else contract.observation_low
        high = np.inf if contract.observation_high is None else contract.observation_high
        self.session = session
        self.array_type = array_type
        self.num_envs = session.num_envs
        self.single_observation_space = gymnasium.spaces.Box(
            np.broadcast_to(low, shape).astype(dtype), np.broadcast_to(high, shape).astype(dtype),
            shape=shape, dtype=dtype,
        )
        box = contract.action_box
        self.single_action_space = (
            gymnasium.spaces.Discrete(contract.n_actions)
            if box is None
            else gymnasium.spaces.Box(
                box.low.astype(box.dtype), box.high.astype(box.dtype), box.shape, box.dtype
            )
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._torch_dtype = torch_dtype(dtype)
        self._action_dtype = torch.int64 if box is None else torch_dtype(box.dtype)
        self._action_shape = (self.num_envs,) if box is None else (self.num_envs, *box.shape)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every copy; `seed` s seeds copy i with s + i (a list must be s, s+1, ...)."""
        if options:
            raise ValueError(
                f"BatchedVectorEnv.reset: options are not supported, got {sorted(options)}"
            )
        if isinstance(seed, list | tuple):
            expected = list(range(seed[0], seed[0] + self.num_envs)) if seed else []
            if list(seed) != expected:
                raise ValueError(
                    f"BatchedVectorEnv.reset: a list of seeds must be s, s+1, ..., one per copy "
                    f"({self.num_envs}), got {list(seed)}"
                )
            seed = seed[0]
        if seed is not None:
            seed = int(seed)
            super().reset(seed=seed)
        observation = self.session.reset(seed=seed)
        return self._observations(observation), {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Apply one action per copy; auto-reset the copies done in this same step."""
        actions = torch.as_tensor(np.asarray(actions) if not torch.is_tensor(actions) else actions)
        # [N] int64, or [N, *A] in a Box's dtype (clipped by the session)
        actions = actions.to(self._action_dtype).reshape(self._action_shape)
        transition = self.session.step_checked(actions)
        observation = self._observations(self.session.observe())
        infos: dict[str, Any] = {}
        done = to_numpy(transition.done)
        if done.any():
            finals = self._observations(transition.next_observation)
            for i in np.flatnonzero(done).tolist():
                final = finals[i].clone() if self.array_type == "torch" else finals[i].copy()
                infos = self._add_info(infos, {"final_obs": final, "final_info": {}}, i)
        if self.array_type == "torch":
            reward = transition.reward.to(torch.float64)
            return observation, reward, transition.terminated, transition.truncated, infos
        reward = to_numpy(transition.reward).astype(np.float64)
        flags = to_numpy(transition.terminated).copy(), to_numpy(transition.truncated).copy()
        return observation, reward, *flags, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Close the session (`close` itself is idempotent: Gymnasium calls this once)."""
        self.session.close()

    def _observations(self, observation: torch.Tensor) -> Any:
        """`observation` as a fresh array (never a view of the environment's state)."""
        if self.array_type == "torch":
            return observation.to(self._torch_dtype, copy=True)
        return to_numpy(observation).astype(self.single_observation_space.dtype, copy=True)


def make_vector_env(
    env_id: str,
    num_envs: int = 1,
    *,
    reset_noise: Literal["torch", "gymnasium"] = "torch",
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    array_type: ArrayType = "numpy",
    **params: Any,
) -> BatchedVectorEnv:
    """The vector entry point of `checked_rl/<env_id>` (see the module docstring)."""
    if reset_noise == "torch":
        session = make_session(
            "torch", env_id, num_envs=num_envs, device=device, dtype=dtype, make_kwargs=params
        )
    elif reset_noise == "gymnasium":
        if env_id not in SPEC_ENVIRONMENTS:
            raise ValueError(
                f"checked_rl/{env_id}: reset_noise='gymnasium' needs a spec twin; the spec "
                f"environments are {sorted(SPEC_ENVIRONMENTS)}"
            )
        if str(device) != "cpu" or dtype is not None:
            raise ValueError(
                f"checked_rl/{env_id}: reset_noise='gymnasium' steps the spec environments on "
                f"the host; device and dtype apply to reset_noise='torch'"
            )
        session = make_session(
            "spec", env_id, num_envs=num_envs, dtype=torch.float64, make_kwargs=params
        )
    else:
        raise ValueError(
            f"checked_rl/{env_id}: reset_noise must be 'torch' or 'gymnasium', got {reset_noise!r}"
        )
    return BatchedVectorEnv(session, array_type=array_type)
