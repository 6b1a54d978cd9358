"""Strategies: contracts, and batches of transitions that obey them or break them in one place.

A corrupted batch is a valid batch with exactly one injected fault, described by a `Corruption`
that says which violation the reference predicate `spec.contract.violations` must report.
Batches are `spec.contract.Transition`s of NumPy arrays (convert with `torch.from_numpy`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

from checked_rl.spec.contract import Contract, Transition

__all__ = [
    "CORRUPTIONS",
    "MAX_AXIS_SIZE",
    "MAX_CONTRACT_ACTIONS",
    "MAX_ENVS",
    "MAX_OBSERVATION_AXES",
    "OBSERVATION_DTYPES",
    "REWARD_DTYPES",
    "STRUCTURE_CORRUPTIONS",
    "VALUE_CORRUPTIONS",
    "Corruption",
    "contract_cases",
    "contracts",
    "corrupted_transitions",
    "valid_transitions",
]

MAX_ENVS = 5
MAX_OBSERVATION_AXES = 2
MAX_AXIS_SIZE = 3
MAX_CONTRACT_ACTIONS = 5
BOUND_MAGNITUDE = 100.0
OBSERVATION_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
REWARD_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

VALUE_CORRUPTIONS = (
    "nan_observation",
    "infinite_observation",
    "observation_out_of_bounds",
    "nan_reward",
    "infinite_reward",
    "reward_out_of_range",
    "action_out_of_range",
    "both_flags",
)
"""Faults in one value of one environment."""

STRUCTURE_CORRUPTIONS = ("wrong_shape", "wrong_dtype")
"""Faults in the shape or dtype of a whole field."""

CORRUPTIONS = VALUE_CORRUPTIONS + STRUCTURE_CORRUPTIONS
"""The kinds of fault `corrupted_transitions` injects (each only where the contract forbids it)."""


@dataclass(frozen=True)
class Corruption:
    """One injected fault and the violation it must cause.

    Attributes:
        name: one of `CORRUPTIONS`.
        kind: the `spec.contract.Violation.kind` it must produce.
        field: the field it changed.
        env: the environment it changed, None for whole-batch faults (shape, dtype).
        entry: the observation entry it changed, or None.
    """

    name: str
    kind: str
    field: str
    env: int | None = None
    entry: tuple[int, ...] | None = None


def _width(dtype: np.dtype[Any]) -> int:
    return dtype.itemsize * 8


@st.composite
def contracts(draw: st.DrawFn) -> Contract:
    """Contracts with small observation shapes and every optional rule on or off."""
    shape = tuple(draw(st.lists(st.integers(1, MAX_AXIS_SIZE), max_size=MAX_OBSERVATION_AXES)))
    dtype = draw(st.sampled_from(OBSERVATION_DTYPES))
    # `+ 0.0` turns -0.0 into 0.0, so that sorted pairs are ordered for Hypothesis too.
    bound = st.floats(-BOUND_MAGNITUDE, BOUND_MAGNITUDE, width=_width(dtype)).map(lambda x: x + 0.0)
    low = high = None
    style = draw(st.sampled_from(("none", "scalar", "per_entry", "low_only", "high_only")))
    if style == "scalar":
        low, high = sorted((draw(bound), draw(bound)))
    elif style in ("per_entry", "low_only", "high_only"):
        size = int(np.prod(shape))
        pairs = [sorted((draw(bound), draw(bound))) for _ in range(size)]
        infinite = draw(st.lists(st.booleans(), min_size=size, max_size=size))
        low = np.array([-np.inf if inf else a for (a, _), inf in zip(pairs, infinite, strict=True)])
        high = np.array([np.inf if inf else b for (_, b), inf in zip(pairs, infinite, strict=True)])
        low, high = low.reshape(shape), high.reshape(shape)
        low = None if style == "high_only" else low
        high = None if style == "low_only" else high
    reward_range = None
    if draw(st.booleans()):
        reward_bound = st.floats(-BOUND_MAGNITUDE, BOUND_MAGNITUDE, width=32).map(lambda x: x + 0.0)
        reward_range = tuple(sorted((draw(reward_bound), draw(reward_bound))))
    return Contract(
        observation_shape=shape,
        n_actions=draw(st.integers(1, MAX_CONTRACT_ACTIONS)),
        observation_dtype=dtype,
        finite_observations=draw(st.booleans()),
        finite_rewards=draw(st.booleans()),
        observation_low=low,
        observation_high=high,
        reward_range=reward_range,
        exclusive_flags=draw(st.booleans()),
    )


def _entry_values(contract: Contract, entry: tuple[int, ...]) -> st.SearchStrategy[float]:
    """Values one observation entry may take under `contract`, special values included."""
    width = _width(contract.observation_dtype)
    low = None if contract.observation_low is None else float(contract.observation_low[entry])
    high = None if contract.observation_high is None else float(contract.observation_high[entry])
    bounded = low is not None or high is not None
    finite = contract.finite_observations
    low = None if low is None or np.isinf(low) else low
    high = None if high is None or np.isinf(high) else high
    return st.floats(
        min_value=low,
        max_value=high,
        allow_nan=not (finite or bounded),
        allow_infinity=False if low is not None and high is not None else not finite,
        width=width,
    )


def _observations(contract: Contract, n: int) -> st.SearchStrategy[np.ndarray]:
    """Valid observations `[n, *S]` under `contract`."""
    entries = list(np.ndindex(*contract.observation_shape))
    row = st.tuples(*(_entry_values(contract, entry) for entry in entries))
    return st.lists(row, min_size=n, max_size=n).map(
        lambda rows: np.array(rows, dtype=contract.observation_dtype).reshape(
            (n, *contract.observation_shape)
        )
    )


@st.composite
def valid_transitions(
    draw: st.DrawFn, contract: Contract, reward_dtype: np.dtype[Any] | None = None
) -> Transition:
    """Batches of 1 to `MAX_ENVS` transitions obeying `contract` (special values where allowed)."""
    n = draw(st.integers(1, MAX_ENVS))
    reward_dtype = reward_dtype or draw(st.sampled_from(REWARD_DTYPES))
    reward_range = contract.reward_range
    rewards = st.floats(
        min_value=None if reward_range is None else reward_range[0],
        max_value=None if reward_range is None else reward_range[1],
        allow_nan=not contract.finite_rewards and reward_range is None,
        allow_infinity=not contract.finite_rewards and reward_range is None,
        width=_width(reward_dtype),
    )
    flags = st.tuples(st.booleans(), st.booleans())
    if contract.exclusive_flags:
        flags = flags.filter(lambda pair: not all(pair))
    pairs = draw(st.lists(flags, min_size=n, max_size=n))
    return Transition(
        observation=draw(_observations(contract, n)),
        action=np.array(
            draw(st.lists(st.integers(0, contract.n_actions - 1), min_size=n, max_size=n)),
            dtype=np.int64,
        ),
        reward=np.array(draw(st.lists(rewards, min_size=n, max_size=n)), dtype=reward_dtype),
        next_observation=draw(_observations(contract, n)),
        terminated=np.array([pair[0] for pair in pairs], dtype=np.bool_),
        truncated=np.array([pair[1] for pair in pairs], dtype=np.bool_),
    )


def _applicable(contract: Contract) -> list[str]:
    """The corruptions that `contract` forbids, hence must report."""
    bounds = contract.observation_low is not None or contract.observation_high is not None
    finite_bound = any(
        bound is not None and np.isfinite(bound).any()
        for bound in (contract.observation_low, contract.observation_high)
    )
    names = []
    if contract.finite_observations or bounds:
        names += ["nan_observation", "infinite_observation"]
    if finite_bound:
        names.append("observation_out_of_bounds")
    if contract.finite_rewards or contract.reward_range is not None:
        names += ["nan_reward", "infinite_reward"]
    if contract.reward_range is not None:
        names.append("reward_out_of_range")
    if contract.exclusive_flags:
        names.append("both_flags")
    return [*names, "wrong_shape", "wrong_dtype", "action_out_of_range"]


def _beyond(limit: float, direction: float, dtype: np.dtype[Any]) -> Any:
    """The nearest value of `dtype` strictly beyond `limit` in `direction` (+inf or -inf)."""
    value = dtype.type(limit)
    while not (value > limit if direction > 0 else value < limit):
        value = np.nextafter(value, dtype.type(direction))
    return value


@st.composite
def corrupted_transitions(
    draw: st.DrawFn, contract: Contract, corruptions: Sequence[str] = CORRUPTIONS
) -> tuple[Transition, Corruption]:
    """A valid batch with one fault the contract forbids, and the `Corruption` describing it.

    Args:
        contract: the rules; it must forbid at least one of `corruptions`.
        corruptions: the kinds of fault to choose from (names in `CORRUPTIONS`).
    """
    choices = [name for name in _applicable(contract) if name in corruptions]
    if not choices:
        raise ValueError(
            f"corrupted_transitions: the contract forbids none of {list(corruptions)}; "
            f"it forbids {_applicable(contract)}"
        )
    batch = draw(valid_transitions(contract))
    fields = batch._asdict()
    n = batch.action.shape[0]
    env = draw(st.integers(0, n - 1))
    name = draw(st.sampled_from(choices))
    entries = list(np.ndindex(*contract.observation_shape))
    field = draw(st.sampled_from(("observation", "next_observation")))
    if name in ("nan_observation", "infinite_observation", "observation_out_of_bounds"):
        if name == "observation_out_of_bounds":
            entry, value = draw(_outside_entry(contract, entries))
            kind = "bounds"
        else:
            entry = draw(st.sampled_from(entries))
            value, kind = _special_observation(contract, entry, name, draw(st.booleans()))
        array = fields[field].copy()
        array[(env, *entry)] = value
        fields[field] = array
        corruption = Corruption(name, kind, field, env, entry)
    elif name in ("nan_reward", "infinite_reward", "reward_out_of_range"):
        reward = fields["reward"].copy()
        high_side = draw(st.booleans())
        if name == "nan_reward":
            reward[env] = np.nan
        elif name == "infinite_reward":
            reward[env] = np.inf if high_side else -np.inf
        else:
            low, high = contract.reward_range
            limit, direction = (high, np.inf) if high_side else (low, -np.inf)
            reward[env] = _beyond(limit, direction, reward.dtype)
        fields["reward"] = reward
        kind = "finite" if contract.finite_rewards and name != "reward_out_of_range" else "range"
        corruption = Corruption(name, kind, "reward", env)
    elif name == "action_out_of_range":
        action = fields["action"].copy()
        action[env] = draw(
            st.sampled_from((-1, contract.n_actions))
            | st.integers(-(2**63), -1)
            | st.integers(contract.n_actions, 2**63 - 1)
        )
        fields["action"] = action
        corruption = Corruption(name, "action", "action", env)
    elif name == "both_flags":
        for flag in ("terminated", "truncated"):
            fields[flag] = fields[flag].copy()
            fields[flag][env] = True
        corruption = Corruption(name, "exclusive", "truncated", env)
    else:
        # One field, or both observation fields alike (which only the contract can catch).
        field = draw(st.sampled_from((*fields, "both observations")))
        changed = ["observation", "next_observation"] if field == "both observations" else [field]
        how = draw(st.integers(0, 2))
        dtype = draw(st.sampled_from(_other_dtypes(contract, changed[0])))
        for name_changed in changed:
            if name == "wrong_shape":
                fields[name_changed] = _reshaped(fields[name_changed], how)
            else:
                with np.errstate(over="ignore", invalid="ignore"):
                    fields[name_changed] = fields[name_changed].astype(dtype)
        kind = "shape" if name == "wrong_shape" else "dtype"
        corruption = Corruption(name, kind, changed[0])
    return Transition(**fields), corruption


def _special_observation(
    contract: Contract, entry: tuple[int, ...], name: str, high_side: bool
) -> tuple[float, str]:
    """NaN or an infinity for `entry`, and the violation kind it must cause there."""
    if name == "nan_observation":
        return np.nan, "finite" if contract.finite_observations else "bounds"
    if not contract.finite_observations:
        # Only an infinity beyond a finite bound breaks the contract: pick that side.
        low, high = contract.observation_low, contract.observation_high
        high_finite = high is not None and np.isfinite(high[entry])
        low_finite = low is not None and np.isfinite(low[entry])
        high_side = high_finite if high_finite != low_finite else high_side
        if not (high_finite or low_finite):
            return np.nan, "bounds"
    return (np.inf if high_side else -np.inf), (
        "finite" if contract.finite_observations else "bounds"
    )


@st.composite
def _outside_entry(draw: st.DrawFn, contract: Contract, entries: list[tuple[int, ...]]) -> Any:
    """An entry with a finite bound and a finite value of the dtype just beyond it."""
    sides = ((np.inf, contract.observation_high), (-np.inf, contract.observation_low))
    candidates = [
        (entry, side, float(bound[entry]))
        for side, bound in sides
        if bound is not None
        for entry in entries
        if np.isfinite(bound[entry])
    ]
    entry, side, limit = draw(st.sampled_from(candidates))
    return entry, _beyond(limit, side, contract.observation_dtype)


def _reshaped(array: np.ndarray, how: int) -> np.ndarray:
    """`array` with one axis too many (0), one row too many (1) or its last axis dropped (2)."""
    if how == 0:
        return array[..., np.newaxis]
    if how == 1:
        return np.concatenate([array, array[:1]], axis=0)
    return array[..., 0]


def _other_dtypes(contract: Contract, field: str) -> list[np.dtype[Any]]:
    """Dtypes `field` must not have under `contract`."""
    if field in ("observation", "next_observation"):
        candidates = [*OBSERVATION_DTYPES, np.dtype(np.int32)]
        return [c for c in candidates if c != contract.observation_dtype]
    if field == "action":
        return [np.dtype(np.int32), np.dtype(np.float64), np.dtype(np.uint8)]
    if field == "reward":
        return [np.dtype(np.int64), np.dtype(np.bool_)]
    return [np.dtype(np.uint8), np.dtype(np.int64), np.dtype(np.float32)]


@st.composite
def contract_cases(
    draw: st.DrawFn, corruptions: Sequence[str] = CORRUPTIONS, *, include_valid: bool = True
) -> tuple[Contract, Transition, Corruption | None]:
    """A contract and a batch: valid (corruption None) or with one injected fault.

    Args:
        corruptions: the kinds of fault to inject (names in `CORRUPTIONS`); contracts are drawn
            among those that forbid one of them.
        include_valid: whether valid batches are drawn too (about one in three).
    """
    unknown = sorted(set(corruptions) - set(CORRUPTIONS))
    if unknown:
        raise ValueError(f"contract_cases: unknown corruptions {unknown}; valid: {CORRUPTIONS}")
    if include_valid and draw(st.integers(0, 2)) == 0:
        contract = draw(contracts())
        return contract, draw(valid_transitions(contract)), None
    contract = draw(contracts().filter(lambda c: bool(set(_applicable(c)) & set(corruptions))))
    batch, corruption = draw(corrupted_transitions(contract, corruptions))
    return contract, batch, corruption
