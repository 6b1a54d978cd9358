"""The trust-boundary contract: what a valid batch of transitions is, as a pure predicate.

A `Contract` describes an environment with observations of shape `S` and either `n_actions`
discrete actions or continuous actions in a box (`action_box`, a `spec.envs.base.Box` of shape
`A`, bounds `[low, high]` and a float dtype). A batch of `N` transitions (one per environment,
all taken at the same step) is valid when, for every environment `i`:

    observation[i], next_observation[i]   have shape S and the contract's dtype,
                                          are finite (if `finite_observations`),
                                          lie in [observation_low, observation_high] entrywise;
    action[i]                             discrete: is an int64 in {0, ..., n_actions - 1};
                                          continuous: has shape A and the box's dtype, and
                                          is finite (it may lie outside the box, see below);
    reward[i]                             is a float, finite (if `finite_rewards`),
                                          lies in [reward_range[0], reward_range[1]];
    terminated[i], truncated[i]           are bools, not both True (if `exclusive_flags`).

A continuous action outside its box is valid and recorded as given: the environment clips it
entrywise into `[low, high]` (`Box.clip`) before applying it, as Gymnasium's continuous
environments do, and the transition keeps the unclipped action, so that a learner can evaluate
the log-probability of the action its policy actually sampled. Only a non-finite entry is a
violation ("finite"), since no clipping gives it a meaning.

Bounds are closed and compared exactly in float64 (every float32 value is a float64 value), so a
NaN is never inside any bound. `violations` lists every broken rule; the empty list means valid.
This module is the reference: the runtime checks whole batches fast and, when a batch fails,
reports the first violation listed here.

Source: TorchLean's RL runtime (the trust-boundary checks of its checked sessions).
"""

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from checked_rl.spec.envs.base import Box

__all__ = [
    "FIELDS",
    "Contract",
    "Transition",
    "Violation",
    "observation_violations",
    "violations",
]

FIELDS = ("observation", "action", "reward", "next_observation", "terminated", "truncated")
"""The fields of a transition, in the order in which violations are listed."""

_OBSERVATION_FIELDS = ("observation", "next_observation")


class Transition(NamedTuple):
    """A batch of `N` transitions as NumPy arrays, one row per environment.

    Nothing is checked on construction: `violations` is the check.
    """

    observation: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_observation: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


def _bound_array(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray | None:
    """`value` (None, scalar or array) as a read-only float64 array of `shape`, or None."""
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    try:
        array = np.broadcast_to(array, shape).copy()
    except ValueError:
        raise ValueError(
            f"Contract: {name} must be a scalar or broadcast to the observation shape {shape}, "
            f"got shape {array.shape}"
        ) from None
    if np.isnan(array).any():
        raise ValueError(f"Contract: {name} must not contain NaN, got {array}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Contract:
    """What a valid transition is for one environment.

    Attributes:
        observation_shape: the shape `S` of one observation.
        n_actions: valid actions are the integers `0 .. n_actions - 1`; None when the actions
            are continuous (`action_box` given).
        observation_dtype: the dtype of observations (float32 unless set).
        finite_observations: observations must be free of NaN and infinities.
        finite_rewards: rewards must be free of NaN and infinities.
        observation_low, observation_high: closed bounds, a scalar or an array broadcast to
            `S` (stored as float64 arrays of shape `S`); None means unbounded on that side.
        reward_range: closed interval `(low, high)` for rewards, or None.
        exclusive_flags: `terminated` and `truncated` may not both be True.
        action_box: for continuous actions (with `n_actions=None`), their `Box`: an action must
            have its shape and dtype and be finite; values outside it are clipped by the
            environment and recorded as given.
    """

    observation_shape: tuple[int, ...]
    n_actions: int | None
    observation_dtype: np.dtype[Any] = field(default_factory=lambda: np.dtype(np.float32))
    finite_observations: bool = True
    finite_rewards: bool = True
    observation_low: np.ndarray | None = None
    observation_high: np.ndarray | None = None
    reward_range: tuple[float, float] | None = None
    exclusive_flags: bool = False
    action_box: Box | None = None

    def __post_init__(self) -> None:
        shape = tuple(int(size) for size in self.observation_shape)
        if any(size < 0 for size in shape):
            raise ValueError(f"Contract: observation_shape must be non-negative, got {shape}")
        if self.action_box is not None:
            if self.n_actions is not None or not isinstance(self.action_box, Box):
                raise ValueError(
                    "Contract: continuous actions take n_actions=None and a Box action_box, "
                    f"got n_actions={self.n_actions!r}, action_box={self.action_box!r}"
                )
        elif self.n_actions is None or int(self.n_actions) < 1:
            raise ValueError(f"Contract: n_actions must be at least 1, got {self.n_actions}")
        low = _bound_array(self.observation_low, shape, "observation_low")
        high = _bound_array(self.observation_high, shape, "observation_high")
        if low is not None and high is not None and np.any(low > high):
            raise ValueError(
                f"Contract: observation_low must not exceed observation_high, got {low} > {high}"
            )
        reward_range = self.reward_range
        if reward_range is not None:
            reward_low, reward_high = (float(bound) for bound in reward_range)
            if not reward_low <= reward_high:
                raise ValueError(
                    f"Contract: reward_range must be (low, high) with low <= high, "
                    f"got {self.reward_range}"
                )
            reward_range = (reward_low, reward_high)
        object.__setattr__(self, "observation_shape", shape)
        if self.n_actions is not None:
            object.__setattr__(self, "n_actions", int(self.n_actions))
        object.__setattr__(self, "observation_dtype", np.dtype(self.observation_dtype))
        object.__setattr__(self, "observation_low", low)
        object.__setattr__(self, "observation_high", high)
        object.__setattr__(self, "reward_range", reward_range)

    @property
    def continuous(self) -> bool:
        """Whether actions are continuous (the contract has an `action_box`)."""
        return self.action_box is not None


@dataclass(frozen=True, eq=False)
class Violation:
    """One broken rule of a contract.

    Attributes:
        kind: "shape", "dtype", "finite", "bounds", "action", "range" or "exclusive".
        field: the transition field, one of `FIELDS`.
        env: the environment index, None for a rule about the whole batch (shape, dtype).
        step: the step index given to `violations`, or None.
        entry: the index of the entry inside one observation, or None.
        value: the offending value (a NumPy scalar, a shape or a dtype).
        bound: what was expected, as text.
    """

    kind: str
    field: str
    env: int | None
    step: int | None
    entry: tuple[int, ...] | None
    value: Any
    bound: str

    @property
    def message(self) -> str:
        """The one-line report, e.g. `contract violation: reward[env 0, step 3] = nan ...`."""
        where = ", ".join(
            part
            for part in (
                None if self.env is None else f"env {self.env}",
                None if self.step is None else f"step {self.step}",
            )
            if part is not None
        )
        subject = f"{self.field}[{where}]" if where else self.field
        if self.entry is not None:
            index = self.entry[0] if len(self.entry) == 1 else self.entry
            subject += f" entry {index}"
        if self.kind in ("shape", "dtype"):
            found = f"has {self.kind} {self.value!s}, expected {self.bound}"
            return f"contract violation: {subject} {found}"
        return f"contract violation: {subject} = {self.value!s} {self.bound}"

    def __str__(self) -> str:
        return self.message


def _shape_text(shape: tuple[int | None, ...]) -> str:
    """A shape as text, with `N` for an unknown batch size: `(N, 4)`."""
    sizes = ["N" if size is None else str(size) for size in shape]
    return f"({sizes[0]},)" if len(sizes) == 1 else f"({', '.join(sizes)})"


def _structure_violations(
    contract: Contract, transition: Transition, step: int | None
) -> tuple[list[Violation], int | None]:
    """Shape and dtype violations of every field, and the batch size N.

    N is the leading size that most fields share (the first such in field order on a tie), so
    that one malformed field is the one reported.
    """
    found = []
    sizes = [np.shape(getattr(transition, name))[:1] for name in FIELDS]
    sizes = [size[0] for size in sizes if size]
    n = max(sizes, key=sizes.count) if sizes else None
    expected_shapes = {name: (n,) for name in FIELDS}
    box = contract.action_box
    if box is not None:
        expected_shapes["action"] = (n, *box.shape)
    for name in _OBSERVATION_FIELDS:
        expected_shapes[name] = (n, *contract.observation_shape)
    for name in FIELDS:
        array = getattr(transition, name)
        if not isinstance(array, np.ndarray):
            kind = type(array).__name__
            found.append(Violation("dtype", name, None, step, None, kind, "a NumPy array"))
            continue
        if array.shape != expected_shapes[name]:
            shape = array.shape
            expected = _shape_text(expected_shapes[name])
            found.append(Violation("shape", name, None, step, None, shape, expected))
            continue
        dtype = array.dtype
        if name in _OBSERVATION_FIELDS:
            ok, expected = dtype == contract.observation_dtype, str(contract.observation_dtype)
        elif name == "action" and box is not None:
            ok, expected = dtype == box.dtype, str(box.dtype)
        elif name == "action":
            ok, expected = dtype == np.int64, "int64"
        elif name == "reward":
            ok, expected = np.issubdtype(dtype, np.floating), "a floating dtype"
        else:
            ok, expected = dtype == np.bool_, "bool"
        if not ok:
            found.append(Violation("dtype", name, None, step, None, dtype, expected))
    return found, n


def _in_dtype(limit: np.float64, dtype: np.dtype[Any]) -> str:
    """A float64 bound as text, in the observations' float dtype where that is exact."""
    if np.issubdtype(dtype, np.floating):
        with np.errstate(over="ignore"):
            rounded = dtype.type(limit)
        if rounded == limit:
            return str(rounded)
    return str(limit)


def _observation_violations(
    contract: Contract, name: str, observation: np.ndarray, env: int, step: int | None
) -> list[Violation]:
    """Finiteness and bound violations of one environment's observation, entry by entry."""
    found = []
    low, high = contract.observation_low, contract.observation_high
    for entry in np.ndindex(*contract.observation_shape):
        value = observation[entry]
        as_float = np.float64(value)
        if contract.finite_observations and not np.isfinite(as_float):
            found.append(Violation("finite", name, env, step, entry, value, "is not finite"))
            continue
        lower = -np.inf if low is None else low[entry]
        upper = np.inf if high is None else high[entry]
        if (low is not None or high is not None) and not lower <= as_float <= upper:
            shown = [_in_dtype(limit, observation.dtype) for limit in (lower, upper)]
            bound = f"is out of bounds [{shown[0]}, {shown[1]}]"
            found.append(Violation("bounds", name, env, step, entry, value, bound))
    return found


def _env_violations(
    contract: Contract, transition: Transition, env: int, step: int | None
) -> list[Violation]:
    """Every value violation of environment `env`, in field order."""
    found = _observation_violations(contract, "observation", transition.observation[env], env, step)
    action = transition.action[env]
    if contract.action_box is not None:
        for entry in np.ndindex(*contract.action_box.shape):
            if not np.isfinite(action[entry]):
                value = action[entry]
                found.append(
                    Violation("finite", "action", env, step, entry, value, "is not finite")
                )
    elif not 0 <= action < contract.n_actions:
        bound = f"is not an action in [0, {contract.n_actions})"
        found.append(Violation("action", "action", env, step, None, action, bound))
    reward = transition.reward[env]
    if contract.finite_rewards and not np.isfinite(reward):
        found.append(Violation("finite", "reward", env, step, None, reward, "is not finite"))
    elif contract.reward_range is not None:
        low, high = contract.reward_range
        if not low <= np.float64(reward) <= high:
            bound = f"is outside the reward range [{low}, {high}]"
            found.append(Violation("range", "reward", env, step, None, reward, bound))
    found += _observation_violations(
        contract, "next_observation", transition.next_observation[env], env, step
    )
    if contract.exclusive_flags and transition.terminated[env] and transition.truncated[env]:
        bound = "but terminated = True too, and the contract makes them exclusive"
        found.append(Violation("exclusive", "truncated", env, step, None, np.True_, bound))
    return found


def violations(
    contract: Contract, transition: Transition, *, step: int | None = None
) -> list[Violation]:
    """Every violation of `contract` by the batch `transition`; the empty list means valid.

    The batch holds one transition per environment, taken at step `step` (used in messages
    only). Shapes and dtypes are checked first, field by field; if any is wrong, values are
    not inspected. Then environments are visited in index order, and within one environment
    the fields in the order of `FIELDS` and the entries of an observation in C order; each
    entry reports at most one violation (not finite before out of bounds).

    Args:
        contract: the rules.
        transition: arrays `observation [N, *S]`, `action [N]`, `reward [N]`,
            `next_observation [N, *S]`, `terminated [N]`, `truncated [N]`.
        step: the step index of the batch, for messages.

    Returns:
        The list of violations in the order described above.

    Example (CartPole-like bounds on the first entry; one NaN, one action out of range):

    >>> contract = Contract((2,), n_actions=2, observation_low=[-2.4, -np.inf],
    ...                     observation_high=[2.4, np.inf])
    >>> batch = Transition(
    ...     observation=np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32),
    ...     action=np.array([1, 2]),
    ...     reward=np.array([1.0, 1.0]),
    ...     next_observation=np.array([[3.0, 1.0], [1.0, np.nan]], dtype=np.float32),
    ...     terminated=np.array([True, False]),
    ...     truncated=np.array([False, False]),
    ... )
    >>> for violation in violations(contract, batch, step=17):
    ...     print(violation)
    contract violation: next_observation[env 0, step 17] entry 0 = 3.0 is out of bounds [-2.4, 2.4]
    contract violation: action[env 1, step 17] = 2 is not an action in [0, 2)
    contract violation: next_observation[env 1, step 17] entry 1 = nan is not finite
    >>> violations(contract, batch._replace(action=np.array([1, 0]),
    ...                                     next_observation=np.zeros((2, 2), np.float32)))
    []
    """
    found, n = _structure_violations(contract, transition, step)
    if found or n is None:
        return found
    for env in range(n):
        found += _env_violations(contract, transition, env, step)
    return found


def observation_violations(
    contract: Contract,
    observations: np.ndarray,
    *,
    field: str = "observation",
    step: int | None = None,
) -> list[Violation]:
    """Every violation of `contract` by a batch of observations `[N, *S]` on its own.

    The observation rules of `violations` (shape, dtype, finiteness, bounds), for observations
    that come without a transition, such as those returned by a reset.

    >>> contract = Contract((1,), n_actions=2, observation_high=1.0)
    >>> [str(v) for v in observation_violations(contract, np.array([[0.5], [2.0]], np.float32))]
    ['contract violation: observation[env 1] entry 0 = 2.0 is out of bounds [-inf, 1.0]']
    """
    expected = _shape_text((None, *contract.observation_shape))
    if not isinstance(observations, np.ndarray):
        kind = type(observations).__name__
        return [Violation("dtype", field, None, step, None, kind, "a NumPy array")]
    if observations.shape[1:] != contract.observation_shape or observations.ndim == 0:
        return [Violation("shape", field, None, step, None, observations.shape, expected)]
    if observations.dtype != contract.observation_dtype:
        bound = str(contract.observation_dtype)
        return [Violation("dtype", field, None, step, None, observations.dtype, bound)]
    found = []
    for env in range(observations.shape[0]):
        found += _observation_violations(contract, field, observations[env], env, step)
    return found
