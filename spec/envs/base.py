"""What every spec environment provides, so sessions and properties treat them alike.

A spec environment is a pair of pure functions over an explicit state:

    reset(params, rng) -> (state, observation)
    step(params, state, action) -> Step(state, observation, reward, terminated, truncated)

bundled with its parameters, the shape and bounds of its observations and its number of
discrete actions in an `Environment` record.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

State = TypeVar("State")
Params = TypeVar("Params")


class Step(NamedTuple, Generic[State]):
    """The outcome of one step of a spec environment.

    `observation` is the observation of the new `state` (the true successor, also when the
    episode has ended); `terminated` means the MDP reached a terminal state, `truncated` that the
    episode was cut by a limit while the state still has a value.
    """

    state: State
    observation: np.ndarray
    reward: float
    terminated: bool
    truncated: bool


@dataclass(frozen=True)
class Environment(Generic[Params, State]):
    """A spec environment: its parameters, its two pure functions and its spaces.

    Attributes:
        name: a short identifier, for messages.
        params: the frozen parameters passed to every call of `reset_fn` and `step_fn`.
        reset_fn: `reset_fn(params, rng) -> (state, observation)`.
        step_fn: `step_fn(params, state, action) -> Step`.
        observation_shape: the shape `S` of one observation.
        observation_dtype: the dtype of observations.
        n_actions: actions are the integers `0 .. n_actions - 1`.
        observation_low, observation_high: closed per-element bounds of valid observations
            (arrays of shape `S`, entries may be infinite), or None for unbounded.
    """

    name: str
    params: Params
    reset_fn: Callable[[Params, np.random.Generator], tuple[State, np.ndarray]]
    step_fn: Callable[[Params, State, int], Step[State]]
    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype[Any]
    n_actions: int
    observation_low: np.ndarray | None = None
    observation_high: np.ndarray | None = None

    def reset(self, rng: np.random.Generator) -> tuple[State, np.ndarray]:
        """Draw an initial state with `rng`; return it and its observation."""
        return self.reset_fn(self.params, rng)

    def step(self, state: State, action: int) -> Step[State]:
        """Apply `action` in `state`."""
        if not 0 <= int(action) < self.n_actions:
            raise ValueError(
                f"{self.name}: action must be an integer in [0, {self.n_actions}), got {action!r}"
            )
        return self.step_fn(self.params, state, int(action))
