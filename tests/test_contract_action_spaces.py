"""Discrete and continuous action spaces: `spec.envs.base.Discrete`/`Box` and the contract."""

import numpy as np
import pytest

from checked_rl.spec.contract import Contract, Transition, violations
from checked_rl.spec.envs import pendulum
from checked_rl.spec.envs.base import Box, Discrete, Environment

BOX = Box((1,), -2.0, 2.0)
CONTINUOUS = Contract((2,), None, action_box=BOX)


def _batch(action: np.ndarray, n: int = 2) -> Transition:
    zeros = np.zeros((n, 2), np.float32)
    flags = np.zeros(n, bool)
    return Transition(zeros, action, np.zeros(n), zeros, flags, flags)


def test_box_stores_bounds_and_clips_in_the_actions_dtype() -> None:
    box = Box((2,), [-1.0, 0.0], 1.0, np.float64)
    assert box.low.tolist() == [-1.0, 0.0] and box.high.tolist() == [1.0, 1.0]
    assert box.dtype == np.float64 and not box.low.flags.writeable
    clipped = BOX.clip(np.array([-7.5], np.float32))
    assert clipped.dtype == np.float32 and clipped.tolist() == [-2.0]
    assert BOX.well_formed(np.array([5.0], np.float32)) and not BOX.contains(np.array([5.0]))
    assert not BOX.well_formed(np.array([5.0]))  # float64, the box is float32
    assert not BOX.well_formed(np.array([np.inf], np.float32))
    assert not BOX.well_formed(np.zeros((1, 1), np.float32))
    assert BOX.contains(np.array([2.0], np.float32)) and BOX == Box((1,), -2, 2, "float32")
    assert hash(BOX) == hash(Box((1,), -2, 2)) and BOX != Box((1,), -1, 2)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (((1,), 1.0, 0.0), "low <= high"),
        (((1,), np.nan, 0.0), "without NaN"),
        (((1,), 0.0, 1.0, np.int64), "floating dtype"),
    ],
)
def test_bad_boxes_are_named(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Box(*args)


def test_discrete_contains_integers_in_range_only() -> None:
    assert Discrete(3).contains(2) and Discrete(3).contains(np.int64(0))
    assert not Discrete(3).contains(3) and not Discrete(3).contains(1.0)
    with pytest.raises(ValueError, match="n must be at least 1"):
        Discrete(0)


def test_environment_derives_or_checks_its_action_space() -> None:
    env = pendulum.environment()
    assert env.continuous and env.action_space == pendulum.action_space(env.params)
    args = ("X", None, pendulum.reset, pendulum.step, (3,), np.dtype(np.float32))
    assert Environment(*args, 4).action_space == Discrete(4)
    assert Environment(*args, None, action_space=Discrete(2)).n_actions == 2
    with pytest.raises(ValueError, match="give n_actions or a Box"):
        Environment(*args, None)
    with pytest.raises(ValueError, match="n_actions=None"):
        Environment(*args, 2, action_space=BOX)
    with pytest.raises(ValueError, match="Discrete"):
        Environment(*args, 3, action_space=Discrete(2))


def test_continuous_action_outside_its_box_is_valid_and_recorded_as_given() -> None:
    action = np.array([[7.0], [-2.0]], np.float32)
    assert violations(CONTINUOUS, _batch(action)) == []
    assert CONTINUOUS.continuous and not Contract((2,), 2).continuous


def test_continuous_action_rules_are_reported() -> None:
    (found,) = violations(CONTINUOUS, _batch(np.array([[0.5], [np.nan]], np.float32)), step=4)
    assert str(found) == "contract violation: action[env 1, step 4] entry 0 = nan is not finite"
    (found,) = violations(CONTINUOUS, _batch(np.zeros((2, 1), np.float64)))
    assert str(found) == "contract violation: action has dtype float64, expected float32"
    (found,) = violations(CONTINUOUS, _batch(np.zeros(2, np.float32)))
    assert str(found) == "contract violation: action has shape (2,), expected (2, 1)"
    (found,) = violations(Contract((2,), 2), _batch(np.zeros((2, 1), np.float32)))
    assert found.kind == "shape" and found.field == "action"


def test_contract_takes_exactly_one_kind_of_action() -> None:
    with pytest.raises(ValueError, match="continuous actions take n_actions=None"):
        Contract((2,), 2, action_box=BOX)
    with pytest.raises(ValueError, match="n_actions must be at least 1"):
        Contract((2,), None)
