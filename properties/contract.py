"""Properties of the trust-boundary contract: the reference predicate and a batched check.

Each factory takes the implementation under test and returns a zero-argument Hypothesis test:

    test_spec_finds_faults = violations_find_injected_faults(spec.contract.violations)
    test_check_agrees = check_agrees_with_violations(runtime.contract.check_transition)

A batched check is any `check(contract, transition, *, step)` over `runtime.contract.Transition`
that returns None for a valid batch and raises an exception with a `violations` attribute (such
as `runtime.contract.ContractViolation`) for an invalid one.
"""

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from checked_rl.properties.strategies.transitions import (
    CORRUPTIONS,
    MAX_ENVS,
    VALUE_CORRUPTIONS,
    Corruption,
    contract_cases,
)
from checked_rl.runtime.contract import Transition
from checked_rl.spec import contract as spec_contract

__all__ = [
    "MAX_STEP",
    "box_samples_obey_derived_contract",
    "check_agrees_with_violations",
    "observation_check_agrees_with_reference",
    "violation_messages_name_the_fault",
    "violations_find_injected_faults",
]

MAX_STEP = 10_000
"""Step indices passed to the checks range over `0 .. MAX_STEP`."""

Violations = Callable[..., list[spec_contract.Violation]]
Check = Callable[..., None]


def _matches(violation: spec_contract.Violation, corruption: Corruption) -> bool:
    """Whether `violation` is the one `corruption` must cause."""
    return (violation.kind, violation.field, violation.env, violation.entry) == (
        corruption.kind,
        corruption.field,
        corruption.env,
        corruption.entry,
    )


def violations_find_injected_faults(
    violations: Violations = spec_contract.violations,
    *,
    corruptions: Sequence[str] = CORRUPTIONS,
) -> Callable[[], None]:
    """A predicate lists nothing for valid batches and lists every injected fault.

    Assumes NumPy batches from `contract_cases` (discrete actions, up to `MAX_ENVS`
    environments, valid or with one injected fault); a fault counts as found when some listed
    violation has its kind, field, environment and entry. Accepts any predicate returning
    `spec.contract.Violation`s at the given step that lists the injected fault among any others
    (one corruption may cause more), in any order.

    Args:
        violations: `violations(contract, transition, *, step) -> list[Violation]`.
        corruptions: the kinds of fault injected (see `properties.strategies.transitions`).
    """

    @given(contract_cases(corruptions), st.integers(0, MAX_STEP))
    def prop(case: tuple[Any, spec_contract.Transition, Corruption | None], step: int) -> None:
        contract, batch, corruption = case
        found = violations(contract, batch, step=step)
        if corruption is None:
            assert found == [], [str(v) for v in found]
            return
        assert any(_matches(v, corruption) for v in found), (corruption, [str(v) for v in found])
        for violation in found:
            assert violation.step == step
            assert str(violation).startswith(f"contract violation: {violation.field}")

    return prop


def _to_runtime(batch: spec_contract.Transition, device: torch.device | str) -> Transition:
    """`batch` as a runtime `Transition` on `device` (its constructor may refuse it)."""
    return Transition(*(torch.from_numpy(np.array(field)).to(device) for field in batch))


def _float32_batch(value: float) -> spec_contract.Transition:
    """One environment whose observations are `[value]` in float32, otherwise valid."""
    observation = np.array([[value]], dtype=np.float32)
    return spec_contract.Transition(
        observation=observation,
        action=np.zeros(1, dtype=np.int64),
        reward=np.zeros(1, dtype=np.float32),
        next_observation=observation,
        terminated=np.zeros(1, dtype=np.bool_),
        truncated=np.zeros(1, dtype=np.bool_),
    )


# Found while writing the fast check: float32(0.1) lies above the float64 bound 0.1, so a check
# that rounds the bound to float32 accepts it.
_BOUND_BETWEEN_FLOAT32_VALUES = (
    spec_contract.Contract((1,), 2, observation_high=0.1),
    _float32_batch(0.1),
    None,
)


# Found by `observation_check_agrees_with_reference`: observations of shape () instead of [N]
# for scalar observations, refused by a shape annotation instead of the contract.
_ZERO_DIMENSIONAL_OBSERVATIONS = (
    spec_contract.Contract((), 2),
    _float32_batch(0.0)._replace(next_observation=np.array(0.0, dtype=np.float32)),
    None,
)


def check_agrees_with_violations(
    check: Check,
    *,
    violations: Violations = spec_contract.violations,
    device: torch.device | str = "cpu",
    corruptions: Sequence[str] = CORRUPTIONS,
) -> Callable[[], None]:
    """A batched check rejects exactly what the reference rejects, reporting its first violation.

    Valid and corrupted batches alike: either the `Transition` constructor refuses the batch
    (then the reference must report a shape or dtype fault), or `check` raises exactly when the
    reference lists a violation, with the reference's first violation as its message and the
    reference's whole list, in order, as its `violations`.

    Assumes batches as `violations_find_injected_faults` put on `device`, and a check that
    signals a fault with a `ValueError` (such as `ContractViolation`) carrying `violations`.
    Accepts only checks that report the reference's wording and order exactly (their message is
    compared as a string); a check with its own wording, or raising another exception type, is
    rejected. One example is pinned: a float32 observation just above a float64 bound.

    Args:
        check: `check(contract, transition, *, step)`, raising on an invalid batch.
        violations: the reference predicate.
        device: where the batches are put.
        corruptions: the kinds of fault injected.
    """

    @given(contract_cases(corruptions), st.integers(0, MAX_STEP))
    @example(case=_BOUND_BETWEEN_FLOAT32_VALUES, step=0)
    def prop(case: tuple[Any, spec_contract.Transition, Corruption | None], step: int) -> None:
        contract, batch, _ = case
        expected = violations(contract, batch, step=step)
        try:
            transition = _to_runtime(batch, device)
        except ValueError:
            assert {v.kind for v in expected} & {"shape", "dtype"}, [str(v) for v in expected]
            return
        try:
            check(contract, transition, step=step)
        except ValueError as error:
            assert expected, f"rejected a batch the reference accepts: {error}"
            assert str(error) == str(expected[0])
            assert [str(v) for v in error.violations] == [str(v) for v in expected]
        else:
            assert not expected, f"accepted a batch with violations: {[str(v) for v in expected]}"

    return prop


def observation_check_agrees_with_reference(
    check_observation: Check,
    *,
    observation_violations: Violations = spec_contract.observation_violations,
    device: torch.device | str = "cpu",
) -> Callable[[], None]:
    """A batched check of observations alone (as after a reset) agrees with the reference.

    Assumes the `next_observation` fields of `contract_cases` batches as tensors on `device`
    (scalar observations included: one example is pinned) and a check raising `ValueError` with
    `violations`. Accepts only checks whose violation list equals the reference's, wording and
    order included.

    Args:
        check_observation: `check_observation(contract, observations, *, field, step)`.
        observation_violations: the reference predicate for observations.
        device: where the observations are put.
    """

    @given(contract_cases(), st.integers(0, MAX_STEP))
    @example(case=_ZERO_DIMENSIONAL_OBSERVATIONS, step=0)
    def prop(case: tuple[Any, spec_contract.Transition, Corruption | None], step: int) -> None:
        contract, batch, _ = case
        observations = batch.next_observation
        expected = observation_violations(
            contract, observations, field="next_observation", step=step
        )
        tensor = torch.from_numpy(np.array(observations)).to(device)
        try:
            check_observation(contract, tensor, field="next_observation", step=step)
        except ValueError as error:
            assert expected, f"rejected observations the reference accepts: {error}"
            assert [str(v) for v in error.violations] == [str(v) for v in expected]
        else:
            assert not expected, f"accepted observations with: {[str(v) for v in expected]}"

    return prop


def violation_messages_name_the_fault(
    check: Check,
    *,
    device: torch.device | str = "cpu",
    corruptions: Sequence[str] = VALUE_CORRUPTIONS,
) -> Callable[[], None]:
    """A rejected batch's message names the field, environment, step, value and bound.

    Checked on batches with one value fault (`corruptions`, a subset of `VALUE_CORRUPTIONS`;
    shape and dtype faults are checked by `check_agrees_with_violations`), without consulting
    the reference: with exactly one fault, the message must be about it.

    Assumes a check raising `ValueError` and messages in the spec's format
    (`field[env i, step t] entry e = value ...` and the bound's phrase, such as
    `is out of bounds [`). Accepts any check using that format, whatever else it adds; it rejects
    one with its own wording.
    """

    @given(contract_cases(corruptions, include_valid=False), st.integers(0, MAX_STEP))
    def prop(case: tuple[Any, spec_contract.Transition, Corruption | None], step: int) -> None:
        contract, batch, corruption = case
        assert corruption is not None and corruption.env is not None
        try:
            check(contract, _to_runtime(batch, device), step=step)
        except ValueError as error:
            message = str(error)
        else:
            raise AssertionError(f"accepted a batch with the fault {corruption}")
        field = getattr(batch, corruption.field)
        value = field[corruption.env]
        if corruption.entry is not None:
            value = value[corruption.entry]
            entry = corruption.entry[0] if len(corruption.entry) == 1 else corruption.entry
            assert f" entry {entry} " in message, message
        assert f"{corruption.field}[env {corruption.env}, step {step}]" in message, message
        assert f"= {value!s} " in message, message
        expected_bound = {
            "finite": "is not finite",
            "bounds": "is out of bounds [",
            "range": "is outside the reward range [",
            "action": f"is not an action in [0, {contract.n_actions})",
            "exclusive": "exclusive",
        }[corruption.kind]
        assert expected_bound in message, message

    return prop


@st.composite
def _box_and_discrete(draw: st.DrawFn) -> tuple[gymnasium.spaces.Box, gymnasium.spaces.Discrete]:
    """A small `Box` (float32 or float64, finite or infinite bounds) and a `Discrete(n)`."""
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    dtype = draw(st.sampled_from((np.float32, np.float64)))
    finite = st.floats(-100, 100, width=32).map(lambda x: x + 0.0)
    lows, highs = [], []
    for _ in range(int(np.prod(shape))):
        low, high = sorted((draw(finite), draw(finite)))
        lows.append(-np.inf if draw(st.booleans()) else low)
        highs.append(np.inf if draw(st.booleans()) else high)
    low, high = np.array(lows).reshape(shape), np.array(highs).reshape(shape)
    box = gymnasium.spaces.Box(low.astype(dtype), high.astype(dtype), shape, dtype)
    return box, gymnasium.spaces.Discrete(draw(st.integers(1, 5)))


def box_samples_obey_derived_contract(
    from_spaces: Callable[..., Any], check: Check
) -> Callable[[], None]:
    """The contract derived from a `Box` accepts the Box's samples and rejects what it refuses.

    Samples drawn by the space (seeded) make a valid batch; moving one entry to the nearest
    value beyond a finite bound makes a batch that `Box.contains` refuses and `check` rejects.

    Assumes small float32 or float64 `Box` spaces (finite or infinite bounds) with a `Discrete`
    action space, and a check raising `ValueError` naming `next_observation[env 0, step 0]
    entry`. Accepts any derivation that keeps the Box's bounds in its dtype (a bound rounded to
    float32 from a float64 bound, or the other way, fails at the first float beyond it).

    Args:
        from_spaces: `from_spaces(observation_space, action_space) -> Contract`.
        check: the batched check.
    """

    @given(_box_and_discrete(), st.integers(1, MAX_ENVS), st.integers(0, 2**32 - 1))
    def prop(spaces: tuple[Any, Any], n: int, seed: int) -> None:
        box, discrete = spaces
        contract = from_spaces(box, discrete)
        box.seed(seed)
        discrete.seed(seed)
        observations = np.stack([box.sample() for _ in range(2 * n)])
        batch = spec_contract.Transition(
            observation=observations[:n],
            action=np.array([discrete.sample() for _ in range(n)], dtype=np.int64),
            reward=np.zeros(n, dtype=np.float32),
            next_observation=observations[n:],
            terminated=np.zeros(n, dtype=np.bool_),
            truncated=np.zeros(n, dtype=np.bool_),
        )
        check(contract, _to_runtime(batch, "cpu"), step=0)
        finite_high = np.flatnonzero(np.isfinite(box.high.reshape(-1)))
        if finite_high.size == 0:
            return
        index = np.unravel_index(finite_high[0], box.shape)
        beyond = np.nextafter(box.high[index], box.dtype.type(np.inf))
        outside = batch.next_observation.copy()
        outside[(0, *index)] = beyond
        assert not box.contains(outside[0])
        try:
            check(contract, _to_runtime(batch._replace(next_observation=outside), "cpu"), step=0)
        except ValueError as error:
            assert "next_observation[env 0, step 0] entry" in str(error), str(error)
        else:
            raise AssertionError(f"accepted {beyond} beyond the Box's upper bound {box.high}")

    return prop
