"""The one-pass contract screen (`runtime.contract.screen`): it proves valid batches valid and
hands every faulty one over, so `check_transition` refuses exactly what it refused before."""

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given

from checked_rl.properties.strategies.transitions import contract_cases
from checked_rl.runtime.contract import (
    Contract,
    ContractViolation,
    Transition,
    check_transition,
    report,
    screen,
)
from checked_rl.runtime.contract.extremes import values_valid
from checked_rl.spec import contract as spec_contract
from checked_rl.spec.envs.base import Box

needs_screen = pytest.mark.skipif(
    screen.library() is None, reason="compiled contract screen unavailable (no C compiler?)"
)

N = 33  # more than one vector of every width, with a remainder
POSITIONS = {"first": 0, "middle": N // 2, "last": N - 1}
OBSERVATION_HIGH = np.array([4.8, np.inf, 0.42, np.inf])


def cartpole_contract(**overrides: Any) -> Contract:
    return Contract(
        observation_shape=(4,),
        n_actions=2,
        observation_low=-OBSERVATION_HIGH,
        observation_high=OBSERVATION_HIGH,
        **overrides,
    )


def cartpole_batch(transposed: bool = True) -> dict[str, torch.Tensor]:
    """A valid CartPole-like batch; observations as `[4, N]` storage seen as `[N, 4]`, as
    the runtime CartPole makes them (or contiguous `[N, 4]`)."""
    generator = torch.Generator().manual_seed(0)
    observations = [torch.rand(4, N, generator=generator) * 0.4 - 0.2 for _ in range(2)]
    if not transposed:
        observations = [o.T.contiguous().T for o in observations]
    return {
        "observation": observations[0].T,
        "action": torch.randint(2, (N,), generator=generator),
        "reward": torch.ones(N),
        "next_observation": observations[1].T,
        "terminated": torch.zeros(N, dtype=torch.bool),
        "truncated": torch.zeros(N, dtype=torch.bool),
    }


def refused_as_reference(contract: Contract, transition: Transition) -> None:
    """`check_transition` raises with the reference's first violation and full list."""
    expected = report.violations(contract, transition.numpy(), step=3)
    assert expected
    with pytest.raises(ContractViolation) as raised:
        check_transition(contract, transition, step=3)
    assert str(raised.value) == str(expected[0])
    assert [str(v) for v in raised.value.violations] == [str(v) for v in expected]


@needs_screen
@pytest.mark.parametrize("transposed", [True, False])
def test_the_screen_passes_a_valid_batch(transposed: bool) -> None:
    transition = Transition(**cartpole_batch(transposed))
    assert screen.passes(cartpole_contract(), transition)
    check_transition(cartpole_contract(), transition)


FAULTS = {
    "observation": [np.nan, np.inf, -np.inf, 4.81, -4.81],
    "next_observation": [np.nan, np.inf, -np.inf, 4.81, -4.81],
    "reward": [np.nan, np.inf, -np.inf],
    "action": [-1, 2, 2**62],
}


@needs_screen
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in FAULTS.items() for v in values]
)
@pytest.mark.parametrize("transposed", [True, False])
def test_the_screen_hands_over_every_bad_value(
    field: str, value: float, position: str, transposed: bool
) -> None:
    fields = cartpole_batch(transposed)
    index = POSITIONS[position]
    if field in ("observation", "next_observation"):
        fields[field][index, 0] = value  # entry 0: bounds +-4.8
        if value in (np.inf, -np.inf, np.nan):
            fields[field][N - 1 - index, 3] = value  # an entry without bounds: finiteness only
    else:
        fields[field][index] = value
    transition = Transition(**fields)
    assert not screen.passes(cartpole_contract(), transition)
    assert not values_valid(cartpole_contract(), transition)
    refused_as_reference(cartpole_contract(), transition)


@needs_screen
@pytest.mark.parametrize("position", POSITIONS)
def test_the_screen_hands_over_both_flags_set(position: str) -> None:
    fields = cartpole_batch()
    fields["terminated"][POSITIONS[position]] = True
    fields["truncated"][POSITIONS[position]] = True
    transition = Transition(**fields)
    assert screen.passes(cartpole_contract(), transition)  # not a rule of this contract
    contract = cartpole_contract(exclusive_flags=True)
    assert not screen.passes(contract, transition)
    refused_as_reference(contract, transition)


@needs_screen
def test_the_screen_passes_flags_set_in_different_environments() -> None:
    fields = cartpole_batch()
    fields["terminated"][0] = True
    fields["truncated"][N - 1] = True
    assert screen.passes(cartpole_contract(exclusive_flags=True), Transition(**fields))


@needs_screen
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("observation", torch.zeros(N, 4, dtype=torch.float16)),
        ("observation", torch.zeros(N, 5)),
        ("observation", torch.zeros(N, 2, 2)),
        ("observation", torch.zeros(N, 4, dtype=torch.float64)),
        ("reward", torch.ones(N, dtype=torch.float16)),
        ("action", torch.zeros(N, 1)),
    ],
)
def test_wrong_dtypes_and_shapes_are_refused_as_before(field: str, value: torch.Tensor) -> None:
    fields = cartpole_batch()
    fields[field] = value
    if field == "observation":
        fields["next_observation"] = value.clone()
    transition = Transition(**fields)
    contract = cartpole_contract()
    if field == "reward":  # a float16 reward is valid; the screen hands it over, unread
        assert not screen.passes(contract, transition)
        check_transition(contract, transition)
        return
    assert not screen.passes(contract, transition)
    refused_as_reference(contract, transition)


@needs_screen
def test_continuous_actions_must_be_finite() -> None:
    contract = cartpole_contract().replace(n_actions=None, action_box=Box((2,), -1.0, 1.0))
    fields = cartpole_batch()
    fields["action"] = torch.full((N, 2), 5.0)  # outside the box: valid, the env clips it
    assert screen.passes(contract, Transition(**fields))
    for value in (np.nan, np.inf, -np.inf):
        for position in POSITIONS.values():
            fields["action"] = torch.zeros(N, 2)
            fields["action"][position, 1] = value
            transition = Transition(**fields)
            assert not screen.passes(contract, transition)
            refused_as_reference(contract, transition)


def test_limits_are_rounded_inward_exactly() -> None:
    # float32(0.1) lies above the float64 0.1: the float32 limit must be the next one down.
    low, high = screen.inward(np.array([0.1]), np.array([0.1]), 1)
    assert low.dtype == np.float32 and float(low[0]) >= 0.1 and float(high[0]) <= 0.1
    assert float(np.nextafter(low[0], np.float32(-1))) < 0.1 < float(np.nextafter(high[0], 1))
    max64 = float(np.finfo(np.float64).max)
    low, high = screen.inward(np.array([-max64, -np.inf]), np.array([max64, 1e300]), 1)
    assert list(low) == [-np.finfo(np.float32).max, -np.inf]
    assert list(high) == [np.finfo(np.float32).max, np.finfo(np.float32).max]
    low, high = screen.inward(np.array([0.0]), np.array([1.0]), 2)
    assert (low[0], high[0]) == (0.0, 1.0)
    low, high = screen.inward(np.array([-0.5]), np.array([1.5]), 3)
    assert (low[0], high[0]) == (0, 1) and low.dtype == np.int64
    low, high = screen.inward(np.array([-np.inf]), np.array([np.inf]), 3)
    assert (low[0], high[0]) == (-(2**62), 2**62)


@needs_screen
@given(contract_cases())
def test_the_screen_never_passes_what_the_extremes_check_refuses(case: tuple) -> None:
    contract, batch, _ = case
    try:
        transition = Transition(*(torch.from_numpy(np.array(field)) for field in batch))
    except ValueError:
        return
    if not (
        tuple(transition.observation.shape[1:]) == contract.observation_shape
        and spec_contract.violations(contract, batch)[:1] == []
    ):
        assert not screen.passes(contract, transition) or values_valid(contract, transition)
        return
    # A valid batch: the screen proves it valid wherever it takes its dtypes.
    takes = transition.observation.dtype in (torch.float32, torch.float64) and (
        transition.reward.dtype in (torch.float32, torch.float64)
    )
    assert screen.passes(contract, transition) == takes


PROBE = """
import torch
from checked_rl.runtime.contract import ContractViolation, Transition, check_transition, screen
from checked_rl.spec.contract import Contract
contract = Contract(observation_shape=(2,), n_actions=2)
good = dict(observation=torch.zeros(3, 2), action=torch.zeros(3, dtype=torch.int64),
            reward=torch.ones(3), next_observation=torch.zeros(3, 2),
            terminated=torch.zeros(3, dtype=torch.bool), truncated=torch.zeros(3, dtype=torch.bool))
check_transition(contract, Transition(**good))
good["reward"][1] = float("nan")
try:
    check_transition(contract, Transition(**good), step=4)
except ContractViolation as error:
    print(screen.library() is None, error)
"""


def test_without_the_screen_the_check_is_unchanged() -> None:
    environment = os.environ | {"CHECKED_RL_COMPILED_LOOPS": "0"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True,
        timeout=300, check=True,
    )
    assert result.stdout.strip() == (
        "True contract violation: reward[env 1, step 4] = nan is not finite"
    )
