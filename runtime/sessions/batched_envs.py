"""A checked session over a batched torch environment: the fast session, on CPU or CUDA.

The environment (a `runtime.envs.base.BatchedEnv`) already steps all copies as tensors and
auto-resets in the same step; the session adds the contract check, the step count and the
refusal after a violation. Seeding follows the environment (copy i with `seed + i`). The
session's state holds the environment's `state_dict()`; over an environment without
`state_dict` / `load_state_dict` (one written for 0.1), the session's `state_dict` and
`load_state_dict` raise `StateNotCapturedError` naming the environment's class.
"""

from typing import Any

from torch import Tensor

from checked_rl.runtime.contract import Contract
from checked_rl.runtime.envs.base import BatchedEnv, EnvStep
from checked_rl.runtime.sessions.base import CheckedSession, EnvironmentStepError

__all__ = ["TorchSession"]


class TorchSession(CheckedSession):
    """A `BatchedEnv` behind the checked-session protocol, on the environment's device.

    Args:
        env: the batched environment; the session uses its `num_envs` and `device`. One
            without callable `state_dict` and `load_state_dict` still steps; only the session's
            state methods refuse it.
        contract: the contract (default: `Contract.from_env(env)`).
    """

    kind = "torch"
    uncaptured = None

    def __init__(self, env: BatchedEnv, *, contract: Contract | None = None) -> None:
        super().__init__(contract or Contract.from_env(env), env.num_envs, env.device)
        self.env = env
        state_methods = (getattr(env, name, None) for name in ("state_dict", "load_state_dict"))
        if not all(callable(method) for method in state_methods):
            self.uncaptured = (
                f"batched environment {type(env).__name__} (it has no state_dict/load_state_dict)"
            )

    def _reset(self, seed: int | None) -> Tensor:
        return self.env.reset(seed=seed)

    def _step(self, actions: Tensor, step: int) -> EnvStep:
        try:
            return self.env.step(actions)
        except Exception as error:
            raise EnvironmentStepError(
                f"{type(self.env).__name__} raised at step {step}: {type(error).__name__}: {error}"
            ) from error

    def _observe(self) -> Tensor:
        return self.env.observe()

    def _env_state_dict(self) -> dict[str, Any]:
        return self.env.state_dict()

    def _load_env_state_dict(self, envs: Any, observation: Tensor) -> None:
        self.env.load_state_dict(envs)
