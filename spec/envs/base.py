"""What every spec environment provides, so sessions and properties treat them alike.

A spec environment is a pair of pure functions over an explicit state:

    reset(params, rng) -> (state, observation)
    step(params, state, action) -> Step(state, observation, reward, terminated, truncated)

bundled with its parameters, the shape and bounds of its observations and its action space in
an `Environment` record. Actions are discrete (`Discrete(n)`: the integers `0 .. n - 1`) or
continuous (`Box`: arrays of one shape and dtype, with closed per-entry bounds). A continuous
environment is stepped with the action as given, also outside its box: it clips the action
itself, exactly as its upstream does, so that a learner can keep the unclipped action (the one
its policy sampled) for its log-probability.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

State = TypeVar("State")
Params = TypeVar("Params")


@dataclass(frozen=True)
class Discrete:
    """Discrete actions: the integers `0 .. n - 1`.

    >>> Discrete(3).contains(2), Discrete(3).contains(3)
    (True, False)
    """

    n: int

    def __post_init__(self) -> None:
        if int(self.n) < 1:
            raise ValueError(f"Discrete: n must be at least 1, got {self.n}")
        object.__setattr__(self, "n", int(self.n))

    def contains(self, action: Any) -> bool:
        """Whether `action` is an integer in `[0, n)`."""
        return bool(
            np.ndim(action) == 0
            and np.issubdtype(np.asarray(action).dtype, np.integer)
            and 0 <= int(action) < self.n
        )


@dataclass(frozen=True, eq=False)
class Box:
    """Continuous actions: arrays of `shape` and `dtype` with closed bounds `[low, high]`.

    `low` and `high` are stored as read-only float64 arrays of `shape` (a scalar broadcasts).
    An action is *well formed* (`well_formed`) when it is a finite array of the shape and dtype;
    it is *inside* the box (`contains`) when it is also within the bounds. Environments accept
    well-formed actions outside the box and clip them (`clip` states how).

    >>> box = Box((1,), -2.0, 2.0)
    >>> box.well_formed(np.array([3.0], np.float32)), box.contains(np.array([3.0], np.float32))
    (True, False)
    >>> box.clip(np.array([3.0], np.float32)).tolist()
    [2.0]
    """

    shape: tuple[int, ...]
    low: Any
    high: Any
    dtype: Any = "float32"  # anything `np.dtype` takes; stored as a `np.dtype`

    def __post_init__(self) -> None:
        shape = tuple(int(size) for size in self.shape)
        dtype = np.dtype(self.dtype)
        if not np.issubdtype(dtype, np.floating):
            raise ValueError(f"Box: dtype must be a floating dtype, got {dtype}")
        low = np.broadcast_to(np.asarray(self.low, dtype=np.float64), shape).copy()
        high = np.broadcast_to(np.asarray(self.high, dtype=np.float64), shape).copy()
        if np.isnan(low).any() or np.isnan(high).any() or np.any(low > high):
            raise ValueError(f"Box: need low <= high without NaN, got low={low}, high={high}")
        low.setflags(write=False)
        high.setflags(write=False)
        for name, value in (("shape", shape), ("dtype", dtype), ("low", low), ("high", high)):
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Box)
            and (self.shape, self.dtype) == (other.shape, other.dtype)
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.low.tobytes(), self.high.tobytes()))

    def well_formed(self, action: Any) -> bool:
        """Whether `action` is a NumPy array of the box's shape and dtype, every entry finite."""
        return bool(
            isinstance(action, np.ndarray)
            and action.shape == self.shape
            and action.dtype == self.dtype
            and np.isfinite(action).all()
        )

    def contains(self, action: Any) -> bool:
        """Whether `action` is well formed and within `[low, high]` entrywise."""
        return self.well_formed(action) and bool(
            np.all((self.low <= action) & (action <= self.high))
        )

    def clip(self, action: np.ndarray) -> np.ndarray:
        """`action` clipped into the box entrywise, in its own dtype (`np.clip`)."""
        return np.clip(action, self.low.astype(action.dtype), self.high.astype(action.dtype))


ActionSpace = Discrete | Box
"""The action space of an environment: `Discrete(n)` or `Box(shape, low, high, dtype)`."""


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
        n_actions: discrete actions are the integers `0 .. n_actions - 1`; None for an
            environment with continuous actions (`action_space` a `Box`).
        observation_low, observation_high: closed per-element bounds of valid observations
            (arrays of shape `S`, entries may be infinite), or None for unbounded.
        action_space: `Discrete(n_actions)` (the default, derived from `n_actions`) or a `Box`.
    """

    name: str
    params: Params
    reset_fn: Callable[[Params, np.random.Generator], tuple[State, np.ndarray]]
    step_fn: Callable[[Params, State, Any], Step[State]]
    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype[Any]
    n_actions: int | None
    observation_low: np.ndarray | None = None
    observation_high: np.ndarray | None = None
    action_space: ActionSpace | None = None

    def __post_init__(self) -> None:
        space = self.action_space
        if space is None:
            if self.n_actions is None:
                raise ValueError(f"{self.name}: give n_actions or a Box action_space")
            object.__setattr__(self, "action_space", Discrete(self.n_actions))
        elif isinstance(space, Discrete) and self.n_actions in (None, space.n):
            object.__setattr__(self, "n_actions", space.n)
        elif not (isinstance(space, Box) and self.n_actions is None):
            raise ValueError(
                f"{self.name}: action_space must be Discrete(n_actions) or a Box with "
                f"n_actions=None, got n_actions={self.n_actions!r}, action_space={space!r}"
            )

    @property
    def continuous(self) -> bool:
        """Whether the actions are continuous (the action space is a `Box`)."""
        return isinstance(self.action_space, Box)

    def reset(self, rng: np.random.Generator) -> tuple[State, np.ndarray]:
        """Draw an initial state with `rng`; return it and its observation."""
        return self.reset_fn(self.params, rng)

    def step(self, state: State, action: Any) -> Step[State]:
        """Apply `action` in `state`.

        Discrete: `action` must be an integer in `[0, n)`. Continuous: a finite array of the
        box's shape (any real dtype); it is passed on as given, the environment clips it.
        """
        space = self.action_space
        if isinstance(space, Box):
            array = np.asarray(action)
            if (
                array.shape != space.shape
                or not np.issubdtype(array.dtype, np.number)
                or not np.isfinite(array).all()
            ):
                raise ValueError(
                    f"{self.name}: action must be a finite real array of shape {space.shape}, "
                    f"got {action!r}"
                )
            return self.step_fn(self.params, state, array)
        assert isinstance(space, Discrete)
        if not 0 <= int(action) < space.n:
            raise ValueError(
                f"{self.name}: action must be an integer in [0, {space.n}), got {action!r}"
            )
        return self.step_fn(self.params, state, int(action))
