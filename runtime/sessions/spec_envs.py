"""A checked session over N spec environments: the exact, slow reference session.

Each environment is a `spec.envs.base.Environment` stepped with plain Python; the batch is
assembled into CPU tensors. Environment i owns the generator `np.random.default_rng(seed + i)`
after `reset(seed=seed)` (the Gymnasium convention, so a spec CartPole session reproduces
Gymnasium's observations bit for bit) and draws its auto-resets from it. The session's state
holds every generator's state and every environment's state (a dataclass, as a dict).
"""

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor

from checked_rl.runtime.contract import Contract, check_host_observations
from checked_rl.runtime.envs.base import EnvStep, check_state, numpy_generator, plain_params
from checked_rl.runtime.sessions.base import (
    CheckedSession,
    EnvironmentStepError,
    StateNotCapturedError,
)
from checked_rl.runtime.sessions.host_steps import host_actions, host_env_step
from checked_rl.spec.envs.base import Environment

__all__ = ["SpecSession"]


class SpecSession(CheckedSession):
    """N copies of one spec environment behind the checked-session protocol.

    Args:
        env: the spec environment.
        num_envs: the number N of copies.
        reward_dtype: the floating dtype of rewards (float32 unless set).
        contract: the contract (default: `Contract.from_spec_env(env)`).
    """

    kind = "spec"
    cpu_only = True
    uncaptured = None

    def __init__(
        self,
        env: Environment[Any, Any],
        num_envs: int = 1,
        *,
        reward_dtype: torch.dtype = torch.float32,
        contract: Contract | None = None,
    ) -> None:
        super().__init__(contract or Contract.from_spec_env(env), num_envs, "cpu")
        self.env = env
        self.reward_dtype = reward_dtype
        self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self._states: list[Any] = [None] * self.num_envs
        self._observations: list[np.ndarray] = []

    def _reset(self, seed: int | None) -> Tensor:
        if seed is not None:
            self._rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]
        self._observations = []
        for i, rng in enumerate(self._rngs):
            self._states[i], observation = self.env.reset(rng)
            self._observations.append(observation)
        return self._observe()

    def _step(self, actions: Tensor, step: int) -> EnvStep:
        next_observations, rewards, terminated, truncated = [], [], [], []
        for i, action in enumerate(host_actions(actions)):
            try:
                outcome = self.env.step(self._states[i], action)
                if outcome.terminated or outcome.truncated:
                    self._states[i], self._observations[i] = self.env.reset(self._rngs[i])
                else:
                    self._states[i], self._observations[i] = outcome.state, outcome.observation
            except Exception as error:
                raise EnvironmentStepError(
                    f"{self.env.name} environment {i} raised at step {step} (action {action}): "
                    f"{type(error).__name__}: {error}"
                ) from error
            next_observations.append(outcome.observation)
            rewards.append(outcome.reward)
            terminated.append(outcome.terminated)
            truncated.append(outcome.truncated)
        return host_env_step(
            self.contract,
            next_observations,
            rewards,
            terminated,
            truncated,
            reward_dtype=self.reward_dtype,
            step=step,
        )

    def _observe(self) -> Tensor:
        return check_host_observations(
            self.contract, self._observations, field="observation", step=None
        )

    def _env_state_dict(self) -> dict[str, Any]:
        if not all(dataclasses.is_dataclass(state) for state in self._states):
            raise StateNotCapturedError(
                f"SpecSession.state_dict: the 'spec' session captures dataclass states only; "
                f"the states of its {self.env.name} environments are {type(self._states[0])}"
            )
        return {
            **self._identity(),
            "rngs": [rng.bit_generator.state for rng in self._rngs],
            "states": [dataclasses.asdict(state) for state in self._states],
        }

    def _load_env_state_dict(self, envs: Any, observation: Tensor) -> None:
        owner = "SpecSession.load_state_dict"
        check_state(owner, envs, self._identity(), ("rngs", "states"))
        state_class = type(self.env.reset(np.random.default_rng(0))[0])
        try:
            states = [state_class(**saved) for saved in envs["states"]]
        except TypeError as error:
            message = f"{owner}: the states do not fit {state_class.__name__}: {error}"
            raise ValueError(message) from error
        self._rngs = [numpy_generator(saved) for saved in envs["rngs"]]
        self._states = states
        self._observations = [np.array(row) for row in observation.numpy()]

    def _identity(self) -> dict[str, Any]:
        """What a state must share with this session's environments to be loaded into them."""
        params = plain_params(self.env.params)
        return {"num_envs": self.num_envs, "env": self.env.name, "params": params}
