"""A checked session over Gymnasium environments in this process.

Any `gymnasium.Env` with a `Box` observation space and a `Discrete` action space (starting at 0)
or a `Box` action space of a floating dtype works; the contract comes from the spaces (a `Box`
action reaches `env.step` as a NumPy array, clipped into the box: `CheckedSession.step_checked`).
Environments are stepped one after the other, and
one that ends is reset in the same step (`env.reset()` without a seed, continuing its own
generator), so the transition keeps the true final observation and no step is wasted.
`reset(seed=s)` calls `env_i.reset(seed=s + i)`: environment i starts exactly where Gymnasium's
own `reset(seed=s + i)` starts. The environments are arbitrary Python objects, so the session
cannot capture their state: `state_dict` and `load_state_dict` raise `StateNotCapturedError`.

Whatever an environment hands over passes the rules of `spec.host_values` (a reset or step
result of the right form, a real scalar reward, bool flags, observations of the space's shape
and dtype), which the bridge's servers apply too, so both kinds give one verdict. Whatever an
environment raises, `SystemExit` and other `BaseException`s included, becomes
`EnvironmentStepError`; only the user's own Ctrl-C goes through as `KeyboardInterrupt`
(`runtime.sessions.interrupts`). `close` closes every environment and then raises
`EnvironmentCloseError` naming those whose `close()` raised.
"""

from collections.abc import Sequence
from typing import Any, Self

import gymnasium
import torch
from torch import Tensor

from checked_rl.runtime.contract import (
    Contract,
    check_host_observations,
    host_result,
    real_flag,
    real_reward,
)
from checked_rl.runtime.env_names import make_environment
from checked_rl.runtime.envs.base import EnvStep
from checked_rl.runtime.sessions.base import (
    CheckedSession,
    EnvironmentCloseError,
    EnvironmentStepError,
)
from checked_rl.runtime.sessions.host_steps import host_actions, host_env_step
from checked_rl.runtime.sessions.interrupts import InterruptWatch

__all__ = ["GymnasiumSession"]


class GymnasiumSession(CheckedSession):
    """Gymnasium environments behind the checked-session protocol, on the CPU.

    The session owns the environments: `close` closes them.

    Args:
        envs: one or more environments with equal spaces.
        reward_dtype: the floating dtype of rewards (float32 unless set).
        contract: the contract (default: `Contract.from_spaces` of the first environment).
    """

    kind = "gymnasium"
    cpu_only = True
    takes_gymnasium_ids = True
    uncaptured = "Gymnasium environments (arbitrary Python objects, without state accessors)"

    def __init__(
        self,
        envs: Sequence[gymnasium.Env],
        *,
        reward_dtype: torch.dtype = torch.float32,
        contract: Contract | None = None,
    ) -> None:
        if isinstance(envs, gymnasium.vector.VectorEnv):
            raise TypeError(
                "GymnasiumSession: expected a sequence of gymnasium.Env, got a "
                f"{type(envs).__name__} (a vector environment); use "
                "make_session('gymnasium-vector', vector_env=env)"
            )
        envs = list(envs)
        if not envs:
            raise ValueError("GymnasiumSession: expected at least one environment, got none")
        first = envs[0]
        for i, env in enumerate(envs[1:], start=1):
            spaces = (env.observation_space, env.action_space)
            if spaces != (first.observation_space, first.action_space):
                raise ValueError(
                    f"GymnasiumSession: every environment must have the spaces of environment 0 "
                    f"({first.observation_space}, {first.action_space}), environment {i} has "
                    f"{spaces}"
                )
        contract = contract or Contract.from_spaces(first.observation_space, first.action_space)
        super().__init__(contract, len(envs), "cpu")
        self.envs = envs
        self.reward_dtype = reward_dtype
        self.name = first.spec.id if first.spec is not None else type(first.unwrapped).__name__
        self._observations: list[Any] = []
        self._watch = InterruptWatch()

    @classmethod
    def from_id(
        cls,
        env_id: str,
        num_envs: int = 1,
        *,
        make_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """`num_envs` environments made by `gymnasium.make(env_id, **make_kwargs)`."""
        if num_envs < 1:
            raise ValueError(
                f"GymnasiumSession.from_id: num_envs must be at least 1, got {num_envs}"
            )
        envs = [
            make_environment(env_id, lambda: gymnasium.make(env_id, **(make_kwargs or {})))
            for _ in range(num_envs)
        ]
        return cls(envs, **options)

    def _reset(self, seed: int | None) -> Tensor:
        self._observations = []
        with self._watch:
            for i in range(self.num_envs):
                env_seed = None if seed is None else seed + i
                result = self._call(i, None, "reset", lambda env, s=env_seed: env.reset(seed=s))
                self._observations.append(host_result(result, "reset", env=i, step=None)[0])
        return self._observe()

    def _step(self, actions: Tensor, step: int) -> EnvStep:
        next_observations, rewards, terminated, truncated = [], [], [], []
        with self._watch:
            for i, action in enumerate(host_actions(actions)):
                result = self._call(
                    i, step, f"step (action {action})", lambda env, a=action: env.step(a)
                )
                observation, reward, term, trunc, _ = host_result(result, "step", env=i, step=step)
                next_observations.append(observation)
                rewards.append(real_reward(reward, env=i, step=step))
                terminated.append(real_flag(term, "terminated", env=i, step=step))
                truncated.append(real_flag(trunc, "truncated", env=i, step=step))
                if terminated[-1] or truncated[-1]:
                    result = self._call(i, step, "auto-reset", lambda env: env.reset())
                    observation = host_result(result, "reset", env=i, step=None)[0]
                self._observations[i] = observation
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

    def _call(self, i: int, step: int | None, what: str, call: Any) -> Any:
        """`call(envs[i])`, wrapping whatever it raises in `EnvironmentStepError` naming the
        environment and the step: also `SystemExit`, `GeneratorExit` and any `BaseException`
        (an environment may not end the process), and `KeyboardInterrupt` unless the user
        pressed Ctrl-C meanwhile (`InterruptWatch`), which is let through."""
        try:
            return call(self.envs[i])
        except BaseException as error:
            if self._watch.from_user():
                raise
            at = "" if step is None else f" at step {step}"
            raise EnvironmentStepError(
                f"{self.name} environment {i} raised in {what}{at}: {type(error).__name__}: {error}"
            ) from error

    def _close(self) -> None:
        failures = []
        with self._watch:
            for i, env in enumerate(self.envs):
                try:
                    env.close()
                except BaseException as error:
                    if self._watch.from_user():
                        raise
                    failures.append((i, f"{type(error).__name__}: {error}"))
        if failures:
            raise EnvironmentCloseError.of(self.name, *failures[0], len(failures))
