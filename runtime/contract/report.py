"""The detailed report of a rejected batch, found by array operations.

`spec.contract.violations` visits every entry of every observation in a Python loop: the
definition, easy to read, and seconds for a batch of large observations (one NaN in a
1,000,000-entry observation cost about 7 s). `violations` and `observation_violations` here
return the same list (same violations, same order, same messages) with whole-array masks;
Python only touches the offending entries. Structure violations (shapes, dtypes) are left to the
reference, which reports them without looking at any value. The property
`tests/test_contract_report.py` checks the agreement on generated batches.
"""

from typing import Any

import numpy as np

from checked_rl.spec import contract as spec_contract
from checked_rl.spec.contract import Violation

__all__ = ["observation_violations", "violations"]


def _bound_text(limit: np.float64, dtype: np.dtype[Any]) -> str:
    """A float64 bound as text, in the observations' float dtype where that is exact (as the
    reference writes it)."""
    if np.issubdtype(dtype, np.floating):
        with np.errstate(over="ignore"):
            rounded = dtype.type(limit)
        if rounded == limit:
            return str(rounded)
    return str(limit)


def _structure_ok(contract: spec_contract.Contract, transition: spec_contract.Transition) -> bool:
    """Whether the reference finds no shape or dtype violation in `transition`."""
    if contract.action_box is not None or not all(
        isinstance(array, np.ndarray) for array in transition
    ):
        return False  # continuous actions: the reference reports (rejected batches only)
    if transition.observation.ndim < 1:
        return False
    n = transition.observation.shape[0]
    observation_shape = (n, *contract.observation_shape)
    return (
        transition.observation.shape == observation_shape
        and transition.next_observation.shape == observation_shape
        and all(
            array.shape == (n,)
            for array in (
                transition.action,
                transition.reward,
                transition.terminated,
                transition.truncated,
            )
        )
        and transition.observation.dtype == contract.observation_dtype
        and transition.next_observation.dtype == contract.observation_dtype
        and transition.action.dtype == np.int64
        and np.issubdtype(transition.reward.dtype, np.floating)
        and transition.terminated.dtype == np.bool_
        and transition.truncated.dtype == np.bool_
    )


def _entry_violations(
    contract: spec_contract.Contract, name: str, observations: np.ndarray, step: int | None
) -> dict[int, list[Violation]]:
    """The finiteness and bound violations of a batch of observations, by environment."""
    n = observations.shape[0]
    values = observations.reshape(n, int(np.prod(contract.observation_shape))).astype(np.float64)
    low, high = contract.observation_low, contract.observation_high
    bounded = low is not None or high is not None
    if not contract.finite_observations and not bounded:
        return {}
    not_finite = (
        ~np.isfinite(values) if contract.finite_observations else np.zeros_like(values, bool)
    )
    lower = np.full(values.shape[1], -np.inf) if low is None else low.reshape(-1)
    upper = np.full(values.shape[1], np.inf) if high is None else high.reshape(-1)
    with np.errstate(invalid="ignore"):
        outside = ~((lower <= values) & (values <= upper)) if bounded else np.zeros_like(not_finite)
    found: dict[int, list[Violation]] = {}
    for env, flat in zip(*np.nonzero(not_finite | outside), strict=True):
        env, flat = int(env), int(flat)
        entry = tuple(int(i) for i in np.unravel_index(flat, contract.observation_shape))
        value = observations[env][entry]
        if not_finite[env, flat]:
            violation = Violation("finite", name, env, step, entry, value, "is not finite")
        else:
            shown = [_bound_text(limit, observations.dtype) for limit in (lower[flat], upper[flat])]
            bound = f"is out of bounds [{shown[0]}, {shown[1]}]"
            violation = Violation("bounds", name, env, step, entry, value, bound)
        found.setdefault(env, []).append(violation)
    return found


def violations(
    contract: spec_contract.Contract,
    transition: spec_contract.Transition,
    *,
    step: int | None = None,
) -> list[Violation]:
    """`spec.contract.violations(contract, transition, step=step)`, by array operations."""
    if not _structure_ok(contract, transition):
        return spec_contract.violations(contract, transition, step=step)
    found = _entry_violations(contract, "observation", transition.observation, step)
    successors = _entry_violations(contract, "next_observation", transition.next_observation, step)
    scalars: dict[int, list[Violation]] = {}
    actions = transition.action
    for env in np.flatnonzero((actions < 0) | (actions >= contract.n_actions)).tolist():
        bound = f"is not an action in [0, {contract.n_actions})"
        scalars.setdefault(env, []).append(
            Violation("action", "action", env, step, None, actions[env], bound)
        )
    rewards = transition.reward
    rewards64 = rewards.astype(np.float64)
    not_finite = ~np.isfinite(rewards) if contract.finite_rewards else np.zeros(len(rewards), bool)
    outside = np.zeros(len(rewards), bool)
    if contract.reward_range is not None:
        low, high = contract.reward_range
        with np.errstate(invalid="ignore"):
            outside = ~((low <= rewards64) & (rewards64 <= high))
    for env in np.flatnonzero(not_finite | outside).tolist():
        if not_finite[env]:
            violation = Violation(
                "finite", "reward", env, step, None, rewards[env], "is not finite"
            )
        else:
            low, high = contract.reward_range
            bound = f"is outside the reward range [{low}, {high}]"
            violation = Violation("range", "reward", env, step, None, rewards[env], bound)
        scalars.setdefault(env, []).append(violation)
    both = np.zeros(len(rewards), bool)
    if contract.exclusive_flags:
        both = transition.terminated & transition.truncated
    report = []
    for env in sorted(
        found.keys() | successors.keys() | scalars.keys() | set(np.flatnonzero(both).tolist())
    ):
        report += found.get(env, []) + scalars.get(env, []) + successors.get(env, [])
        if both[env]:
            bound = "but terminated = True too, and the contract makes them exclusive"
            report.append(Violation("exclusive", "truncated", env, step, None, np.True_, bound))
    return report


def observation_violations(
    contract: spec_contract.Contract,
    observations: np.ndarray,
    *,
    field: str = "observation",
    step: int | None = None,
) -> list[Violation]:
    """`spec.contract.observation_violations(...)`, by array operations."""
    if (
        not isinstance(observations, np.ndarray)
        or observations.ndim == 0
        or observations.shape[1:] != contract.observation_shape
        or observations.dtype != contract.observation_dtype
    ):
        return spec_contract.observation_violations(contract, observations, field=field, step=step)
    found = _entry_violations(contract, field, observations, step)
    return [violation for env in sorted(found) for violation in found[env]]
