"""The vectorised report (`runtime.contract.report`) against the reference `spec.contract`.

Property: for every contract and batch, `report.violations` and `report.observation_violations`
return the reference's list: the same violations, in the same order, with the same messages.
A buggy report (one that lists the scalar violations of an environment before its observation
entries, or an observation's entries in Fortran order) fails it.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checked_rl.runtime.contract import report
from checked_rl.spec import contract as spec_contract

SHAPES = st.sampled_from([(), (3,), (2, 2)])
DTYPES = st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.uint16])
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0, 2.5, 6e4, 0.1])
NEAR_BOUNDS = st.sampled_from([1.0000001, -1e-9])
"""Rewards just outside the reward ranges, which a cast to a narrower float would move in."""
MAX_ENVS = 4


def described(violations) -> list[tuple]:
    """What must agree: every attribute but the value, compared by its text."""
    return [(v.kind, v.field, v.env, v.step, v.entry, str(v.value), v.bound) for v in violations]


@st.composite
def contracts(draw) -> spec_contract.Contract:
    shape, dtype = draw(SHAPES), draw(DTYPES)
    bound = (
        st.none()
        | st.sampled_from([-1.0, 0.0, 0.1, -np.inf])
        | hnp.arrays(np.float64, shape, elements=st.sampled_from([-2.0, -0.5, 0.1, -np.inf]))
    )
    low = draw(bound)
    high = draw(st.none() | st.sampled_from([1.0, 2.5, np.inf]))
    reward_range = draw(st.none() | st.sampled_from([(0.0, 1.0), (-1.0, 6e4)]))
    return spec_contract.Contract(
        shape,
        n_actions=draw(st.integers(1, 3)),
        observation_dtype=dtype,
        finite_observations=draw(st.booleans()),
        finite_rewards=draw(st.booleans()),
        observation_low=low,
        observation_high=high,
        reward_range=reward_range,
        exclusive_flags=draw(st.booleans()),
    )


def observations(contract, n: int):
    dtype = contract.observation_dtype
    elements = SPECIAL if np.issubdtype(dtype, np.floating) else st.integers(0, 3)
    return hnp.arrays(dtype, (n, *contract.observation_shape), elements=elements)


@st.composite
def cases(draw) -> tuple[spec_contract.Contract, spec_contract.Transition]:
    contract = draw(contracts())
    n = draw(st.integers(0, MAX_ENVS))
    transition = spec_contract.Transition(
        observation=draw(observations(contract, n)),
        action=draw(hnp.arrays(np.int64, (n,), elements=st.integers(-1, 3))),
        reward=draw(
            hnp.arrays(
                draw(st.sampled_from([np.float32, np.float64])),
                (n,),
                elements=SPECIAL | NEAR_BOUNDS,
            )
        ),
        next_observation=draw(observations(contract, n)),
        terminated=draw(hnp.arrays(np.bool_, (n,))),
        truncated=draw(hnp.arrays(np.bool_, (n,))),
    )
    if draw(st.integers(0, 9)) == 0:
        transition = transition._replace(action=transition.action.astype(np.int32))
    return contract, transition


def agrees(implementation, contract, transition) -> bool:
    expected = spec_contract.violations(contract, transition, step=3)
    return described(implementation(contract, transition, step=3)) == described(expected)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_the_report_is_the_references(case):
    contract, transition = case
    assert agrees(report.violations, contract, transition)
    expected = spec_contract.observation_violations(
        contract, transition.next_observation, field="next_observation", step=1
    )
    got = report.observation_violations(
        contract, transition.next_observation, field="next_observation", step=1
    )
    assert described(got) == described(expected)


def scalars_first(contract, transition, *, step=None):
    """A buggy report: per environment, the action and reward before the observation."""
    found = report.violations(contract, transition, step=step)
    return sorted(found, key=lambda v: (v.env, v.field not in ("action", "reward")))


def fortran_order(contract, transition, *, step=None):
    """A buggy report: an observation's entries in Fortran order, not C order."""
    found = report.violations(contract, transition, step=step)
    return sorted(found, key=lambda v: (v.env, FIELD_ORDER[v.field], (v.entry or ())[::-1]))


FIELD_ORDER = {"observation": 0, "action": 1, "reward": 2, "next_observation": 3, "truncated": 4}

BUGGY_CASE = (
    spec_contract.Contract((2, 2), n_actions=1, observation_low=0.1, observation_high=1.0),
    spec_contract.Transition(
        observation=np.array([[[0.5, -1.0], [-1.0, 0.5]]], np.float32),
        action=np.array([1]),
        reward=np.array([1.0]),
        next_observation=np.full((1, 2, 2), 0.5, np.float32),
        terminated=np.array([False]),
        truncated=np.array([False]),
    ),
)


@pytest.mark.parametrize("buggy", [scalars_first, fortran_order])
def test_buggy_reports_fail_the_property(buggy):
    assert agrees(report.violations, *BUGGY_CASE)
    assert not agrees(buggy, *BUGGY_CASE)
