"""The checked-session protocol: N environments whose every step passes a contract.

A session owns `num_envs` environments and their current observations. `step_checked` applies
one action per environment, builds the `Transition` (whose `observation` is the previous
`observe()` and whose `next_observation` is the true successor, also where an episode ended),
checks it against the session's `Contract`, resets the environments that are done (same-step
auto-reset: the next `observe()` holds their reset observations) and returns it. A transition
that breaks the contract raises `ContractViolation`; from then on the session refuses to step
or observe until `reset` is called. Reset observations are checked by `reset` itself; those of
an auto-reset are checked as the `observation` of the next transition.

`state_dict()` captures everything an exact resume needs (the step count, the current
observations, and the environments' physical state, step counts and generators) as plain data;
`load_state_dict(state)`, in the same session or a fresh one of the same kind and size, makes
the session usable and continues exactly: the same actions give the same transitions, bit for
bit. A session that cannot capture its environments (the Gymnasium kinds, or a torch session
over a batched environment without state methods) raises `StateNotCapturedError` from both,
naming the kind and what it cannot capture.

Names mirror TorchLean's `CheckedSession`.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

import torch
from jaxtyping import Float, Integer, Shaped
from torch import Tensor

from checked_rl.runtime.contract import (
    Contract,
    Transition,
    check_observation,
    check_transition,
    received_actions,
)
from checked_rl.runtime.envs.base import EnvStep, check_state
from checked_rl.runtime.sessions.host_steps import host_env_step
from checked_rl.runtime.shapes import TypeCheckError
from checked_rl.spec.envs.base import Box

__all__ = [
    "CheckedSession",
    "EnvironmentCloseError",
    "EnvironmentStepError",
    "SessionStateError",
    "StateNotCapturedError",
    "host_env_step",
]

_INTEGER_DTYPES = frozenset(
    {torch.int8, torch.int16, torch.int32, torch.int64}
    | {torch.uint8, torch.uint16, torch.uint32, torch.uint64}
)
"""The dtypes jaxtyping's `Integer` accepts (bool is not one)."""


class SessionStateError(RuntimeError):
    """A session was used out of order: before `reset`, after a rejected step, after `close`."""


class StateNotCapturedError(RuntimeError):
    """A session cannot capture the state of its environments, so cannot resume exactly.

    Raised by `state_dict` and `load_state_dict` of the Gymnasium kinds, whose environments are
    arbitrary Python objects (in this process or in server processes), and of a torch session
    over a batched environment without `state_dict` / `load_state_dict`; the message names the
    kind and what it cannot capture. What remains is to reset such a session with fresh seeds,
    as `runtime.ppo.train` does when it resumes one (and warns).
    """


class EnvironmentStepError(RuntimeError):
    """An environment raised inside its step; the message names the environment and the step.

    The original exception is chained as `__cause__`.
    """


class EnvironmentCloseError(RuntimeError):
    """Some environments' `close()` raised; the message names each and what it raised.

    `close` closes every environment before raising this, so nothing is left open.
    """

    @classmethod
    def of(cls, name: str, env: int, what: str, count: int) -> Self:
        """The error of `count` failed closes, the first of environment `env`, which raised
        `what` ("RuntimeError: ...")."""
        first = f"first in environment {env}: {what}"
        return cls(f"{name}: close() raised in {count} environment(s), {first}")


class CheckedSession(ABC):
    """N environments stepped together, every transition checked against `contract`.

    Attributes:
        kind: the session kind (`runtime.sessions.KINDS`; "custom" for other subclasses).
        cpu_only: whether the session's tensors always live on the CPU, so that `make_session`
            refuses any other device (`runtime.sessions.CPU_ONLY_KINDS`).
        takes_gymnasium_ids: whether the kind's environments are made from any registered
            Gymnasium id (`runtime.sessions.GYMNASIUM_KINDS`).
        uncaptured: what `state_dict` cannot capture, completing "the state of its ...", or
            None where it can; a class attribute that an instance may override.
        contract: the rules every transition obeys.
        num_envs: the number N of environments.
        device: where every returned tensor lives.

    Subclasses implement `_reset`, `_step` (which performs the same-step auto-reset) and
    `_observe`, and may override `_close`. Those that capture their environments' state set
    `uncaptured` to None and implement `_env_state_dict` and `_load_env_state_dict`.
    """

    kind: ClassVar[str] = "custom"
    cpu_only: ClassVar[bool] = False
    takes_gymnasium_ids: ClassVar[bool] = False
    uncaptured: str | None = "environments"

    def __init__(self, contract: Contract, num_envs: int, device: torch.device | str) -> None:
        if num_envs < 1:
            raise ValueError(f"{type(self).__name__}: num_envs must be at least 1, got {num_envs}")
        self.contract = contract
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self._observation: Tensor | None = None
        self._step_count = 0
        self._refusal: str | None = "it has not been reset yet; call reset() first"
        self._closed = False

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """The shape `S` of one observation."""
        return self.contract.observation_shape

    @property
    def n_actions(self) -> int | None:
        """Discrete actions are the integers `0 .. n_actions - 1`; None for continuous ones."""
        return self.contract.n_actions

    @property
    def action_box(self) -> Box | None:
        """The `Box` of continuous actions (`contract.action_box`), None for discrete ones."""
        return self.contract.action_box

    @property
    def step_count(self) -> int:
        """Steps taken since the last reset; the index of the next step in messages."""
        return self._step_count

    def reset(self, seed: int | None = None) -> Shaped[Tensor, " N *obs"]:
        """Reset every environment (environment i seeded with `seed + i` when given).

        Returns the checked reset observations `[N, *S]` and makes the session usable again
        after a rejected step.
        """
        self._require_open("reset")
        if seed is not None and not isinstance(seed, int):
            raise TypeError(
                f"{type(self).__name__}.reset: seed must be an int or None, got {seed!r}"
            )
        self._observation = None
        self._step_count = 0
        try:
            observation = self._reset(seed)
            check_observation(self.contract, observation)
        except BaseException as error:
            self._refusal = f"reset raised {type(error).__name__} ({error}); call reset() again"
            raise
        self._observation = observation
        self._refusal = None
        return observation

    def observe(self) -> Shaped[Tensor, " N *obs"]:
        """The current observations `[N, *S]`: reset observations where an episode just ended."""
        self._require_ready("observe")
        assert self._observation is not None
        return self._observation

    def step_checked(self, actions: Integer[Tensor, " N"] | Float[Tensor, " N *act"]) -> Transition:
        """Apply one action per environment and return the checked transition.

        Discrete actions: `[N]` of an integer dtype; those outside `[0, n_actions)` are stepped
        clamped into range, recorded as given, and the check raises `ContractViolation`.

        Continuous actions (the contract has an `action_box`): `[N, *A]` of the box's dtype,
        every entry finite, else `ContractViolation` before any environment is stepped.
        Environment i receives `action[i]` clipped into the box; the transition records the
        actions unclipped, so their log-probabilities stay those of the sampled actions
        (`runtime.contract.received_actions`, `spec.actions`). `actions` is checked explicitly,
        not by `@typechecked`, whose cost (tens of microseconds) is paid on every step.

        Raises:
            TypeCheckError: `actions` is not a tensor (`[N]` of an integer dtype if discrete).
            ContractViolation: the transition breaks the contract; reset before going on.
            EnvironmentStepError: an environment raised; reset before going on.
            SessionStateError: the session was not reset, was rejected before, or is closed.
        """
        if self.contract.action_box is not None:
            return self._step_continuous(actions)
        if not (
            isinstance(actions, Tensor) and actions.ndim == 1 and actions.dtype in _INTEGER_DTYPES
        ):
            got = (
                f"shape {tuple(actions.shape)}, dtype {actions.dtype}"
                if isinstance(actions, Tensor)
                else type(actions).__name__
            )
            raise TypeCheckError(
                f"{type(self).__name__}.step_checked: actions must be a one-dimensional tensor "
                f"of an integer dtype (Integer[Tensor, ' N']), got {got}"
            )
        self._require_ready("step_checked")
        if actions.shape != (self.num_envs,):
            raise ValueError(
                f"{type(self).__name__}.step_checked: actions must have shape "
                f"({self.num_envs},), one per environment, got {tuple(actions.shape)}"
            )
        actions = actions.to(device=self.device, dtype=torch.int64)
        return self._step_with(actions, lambda: actions.clamp(0, self.n_actions - 1))

    def _step_continuous(self, actions: Any) -> Transition:
        """`step_checked` for continuous actions: check them, step with them clipped."""
        owner = f"{type(self).__name__}.step_checked"
        if not isinstance(actions, Tensor):
            raise TypeCheckError(f"{owner}: actions must be a tensor, got {type(actions).__name__}")
        self._require_ready("step_checked")
        if actions.ndim >= 1 and actions.shape[0] != self.num_envs:
            shape = tuple(actions.shape)
            raise ValueError(f"{owner}: expected {self.num_envs} actions, got shape {shape}")
        actions = actions.to(device=self.device)
        step = self._step_count
        return self._step_with(actions, lambda: received_actions(self.contract, actions, step))

    def _step_with(self, actions: Tensor, received: Callable[[], Tensor]) -> Transition:
        """Step with `received()` (the actions the environments get), record `actions`."""
        step = self._step_count
        observation = self._observation
        try:
            env_step = self._step(received(), step)
            transition = Transition(
                observation=observation,
                action=actions,
                reward=env_step.reward,
                next_observation=env_step.next_observation,
                terminated=env_step.terminated,
                truncated=env_step.truncated,
            )
            check_transition(self.contract, transition, step=step)
            self._observation = self._observe()
        except BaseException as error:
            self._observation = None
            self._refusal = f"step {step} raised {type(error).__name__} ({error}); call reset()"
            raise
        self._step_count = step + 1
        self._refusal = None
        return transition

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as plain data (tensors, numbers, strings, lists,
        dicts: `torch.load(weights_only=True)` reads it back).

        Holds the kind and number of environments, `step_count`, the current observations
        (`observe()`) and, under `envs`, the environments' own state (physics or cells, step
        counts, generators). Only a usable session has one: reset it first.

        Raises:
            StateNotCapturedError: the session cannot capture its environments (`uncaptured`).
            SessionStateError: the session is closed, not reset, or was rejected since.
        """
        self._require_capturable("state_dict")
        self._require_ready("state_dict")
        assert self._observation is not None
        return {
            "kind": self.kind,
            "num_envs": self.num_envs,
            "step_count": self._step_count,
            "observation": self._observation.clone(),
            "envs": self._env_state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly from `state`, a `state_dict()` of a session of this kind and size.

        Afterwards the session is usable without `reset`: `observe()` and `step_count` are the
        captured ones, and the same actions give the same transitions, bit for bit. A state
        that does not fit leaves the session as it was; one whose environments' part fails to
        load leaves it refusing until `reset`.

        Raises:
            StateNotCapturedError: the session cannot capture its environments (`uncaptured`).
            SessionStateError: the session is closed.
            ValueError: one line naming what does not fit (kind, number of environments,
                observation shape, or the environments' part).
        """
        owner = f"{type(self).__name__}.load_state_dict"
        self._require_capturable("load_state_dict")
        matches = {"kind": self.kind, "num_envs": self.num_envs}
        check_state(owner, state, matches, ("observation",), ("step_count", "envs"))
        observation = state["observation"]
        expected = (self.num_envs, *self.observation_shape)
        if not isinstance(observation, Tensor) or tuple(observation.shape) != expected:
            got = tuple(observation.shape) if isinstance(observation, Tensor) else observation
            raise ValueError(f"{owner}: expected observations of shape {expected}, got {got}")
        observation = observation.to(self.device, copy=True)
        self._observation = None
        try:
            self._load_env_state_dict(state["envs"], observation)
        except Exception as error:
            self._refusal = f"load_state_dict raised {type(error).__name__} ({error}); call reset()"
            raise
        self._observation = observation
        self._step_count = int(state["step_count"])
        self._refusal = None

    def close(self) -> None:
        """Release the environments; idempotent. A closed session cannot be used again.

        Raises:
            EnvironmentCloseError: some environment's `close()` raised (every other one is
                closed all the same).
        """
        if not self._closed:
            self._closed = True
            self._refusal = "it is closed"
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close; a failing close does not hide the exception that ended the block (it becomes
        a note on it), and is raised when the block ended normally."""
        try:
            self.close()
        except EnvironmentCloseError as failure:
            if exc is None:
                raise
            exc.add_note(str(failure))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_envs={self.num_envs}, device={self.device}, "
            f"observation_shape={self.observation_shape}, n_actions={self.n_actions})"
        )

    def _require_open(self, method: str) -> None:
        if self._closed:
            raise SessionStateError(f"{type(self).__name__}.{method}: the session is closed")

    def _require_capturable(self, method: str) -> None:
        self._require_open(method)
        if self.uncaptured is not None:
            raise StateNotCapturedError(
                f"{type(self).__name__}.{method}: the {self.kind!r} session cannot capture the "
                f"state of its {self.uncaptured}; reset it with fresh seeds instead"
            )

    def _require_ready(self, method: str) -> None:
        if self._refusal is not None:
            raise SessionStateError(
                f"{type(self).__name__}.{method}: refused because {self._refusal}"
            )

    @abstractmethod
    def _reset(self, seed: int | None) -> Tensor:
        """Reset every environment; return the observations `[N, *S]` on `device`."""

    @abstractmethod
    def _step(self, actions: Tensor, step: int) -> EnvStep:
        """Step every environment with in-range `actions` and auto-reset where done.

        Returns the true successors (before any reset); `step` is for error messages. Raise
        `EnvironmentStepError` (chaining the cause) when an environment raises.
        """

    @abstractmethod
    def _observe(self) -> Tensor:
        """The current observations `[N, *S]` after the last `_step` or `_reset`."""

    def _close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release the environments."""

    def _env_state_dict(self) -> Any:
        """The environments' state as plain data, for a session whose `uncaptured` is None."""
        raise NotImplementedError(f"{type(self).__name__} does not capture its environments")

    def _load_env_state_dict(self, envs: Any, observation: Tensor) -> None:
        """Restore what `_env_state_dict` returned; `observation` is the captured `observe()`.

        Raise a one-line ValueError when `envs` does not fit these environments.
        """
        raise NotImplementedError(f"{type(self).__name__} does not capture its environments")
