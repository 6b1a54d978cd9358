"""The trust-boundary contract: spec predicate, runtime records and batched check."""

import gymnasium
import numpy as np
import pytest
import torch

from checked_rl.properties.contract import (
    box_samples_obey_derived_contract,
    check_agrees_with_violations,
    observation_check_agrees_with_reference,
    violation_messages_name_the_fault,
    violations_find_injected_faults,
)
from checked_rl.properties.strategies.transitions import CORRUPTIONS
from checked_rl.runtime.contract import (
    Contract,
    ContractViolation,
    Transition,
    check_host_observations,
    check_observation,
    check_transition,
    observation_structure_violation,
    real_reward,
)
from checked_rl.spec import contract as spec_contract
from checked_rl.spec.envs import cartpole, gridworld

test_spec_violations_find_injected_faults = violations_find_injected_faults(
    spec_contract.violations
)
test_runtime_check_agrees_with_spec = check_agrees_with_violations(check_transition)
test_runtime_messages_name_the_fault = violation_messages_name_the_fault(check_transition)
test_runtime_observation_check_agrees_with_spec = observation_check_agrees_with_reference(
    check_observation
)
test_contract_from_box_accepts_samples = box_samples_obey_derived_contract(
    Contract.from_spaces, check_transition
)


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_each_fault_found_by_spec_and_runtime_alike(corruption: str) -> None:
    """The properties above, one kind of fault at a time, so that every kind gets examples."""
    violations_find_injected_faults(spec_contract.violations, corruptions=(corruption,))()
    check_agrees_with_violations(check_transition, corruptions=(corruption,))()


def cartpole_contract() -> Contract:
    env = gymnasium.make("CartPole-v1")
    return Contract.from_spaces(env.observation_space, env.action_space)


def batch(n: int = 4, **changes: torch.Tensor) -> Transition:
    """A valid CartPole batch of zeros, with some fields replaced."""
    fields = {
        "observation": torch.zeros(n, 4),
        "action": torch.zeros(n, dtype=torch.int64),
        "reward": torch.ones(n),
        "next_observation": torch.zeros(n, 4),
        "terminated": torch.zeros(n, dtype=torch.bool),
        "truncated": torch.zeros(n, dtype=torch.bool),
    }
    return Transition(**{**fields, **changes})


def test_design_example_message() -> None:
    next_observation = torch.zeros(4, 4)
    next_observation[3, 2] = float("nan")
    with pytest.raises(ContractViolation) as caught:
        check_transition(cartpole_contract(), batch(next_observation=next_observation), step=17)
    assert str(caught.value) == (
        "contract violation: next_observation[env 3, step 17] entry 2 = nan is not finite"
    )
    violation = caught.value.violation
    assert (violation.field, violation.env, violation.step, violation.entry) == (
        "next_observation",
        3,
        17,
        (2,),
    )


def test_first_violation_in_env_order_and_all_listed() -> None:
    observation = torch.zeros(4, 4)
    observation[2, 0] = 5.0  # beyond CartPole's Box bound 4.8
    action = torch.tensor([0, 1, 1, 7])
    with pytest.raises(ContractViolation) as caught:
        check_transition(cartpole_contract(), batch(observation=observation, action=action), step=3)
    messages = [str(v) for v in caught.value.violations]
    assert messages == [
        "contract violation: observation[env 2, step 3] entry 0 = 5.0 is out of bounds [-4.8, 4.8]",
        "contract violation: action[env 3, step 3] = 7 is not an action in [0, 2)",
    ]
    assert str(caught.value) == messages[0]


def test_contract_violation_is_a_value_error() -> None:
    assert issubclass(ContractViolation, ValueError)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"action": torch.zeros(4, dtype=torch.int32)}, "action must have dtype torch.int64"),
        ({"reward": torch.ones(4, 1)}, "reward must have shape (4,)"),
        ({"reward": torch.ones(4, dtype=torch.int64)}, "reward must have a floating dtype"),
        ({"terminated": torch.zeros(4)}, "terminated must have dtype torch.bool"),
        ({"next_observation": torch.zeros(4, 3)}, "next_observation must have shape (4, 4)"),
        ({"observation": np.zeros((4, 4))}, "observation must be a torch.Tensor"),
    ],
)
def test_transition_constructor_refuses_inconsistent_fields(
    changes: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValueError, match="Transition: ") as caught:
        batch(**changes)
    assert fragment in str(caught.value)


def test_transition_is_frozen_and_knows_its_batch() -> None:
    transition = batch(3, truncated=torch.tensor([False, True, False]))
    assert transition.num_envs == 3
    assert transition.device == torch.device("cpu")
    assert transition.done.tolist() == [False, True, False]
    with pytest.raises(AttributeError):
        transition.reward = torch.zeros(3)  # type: ignore[misc]


def test_from_spaces_reads_box_and_discrete() -> None:
    contract = cartpole_contract()
    assert contract.observation_shape == (4,)
    assert contract.n_actions == 2
    assert contract.observation_dtype == np.float32
    assert contract.observation_high[0] == np.float32(4.8)
    assert np.isinf(contract.observation_high[1])


@pytest.mark.parametrize(
    ("observation_space", "action_space", "fragment"),
    [
        (gymnasium.spaces.Discrete(3), gymnasium.spaces.Discrete(2), "Box observation space"),
        (gymnasium.spaces.Box(-1, 1, (2,)), gymnasium.spaces.Discrete(2, start=1), "starting at 0"),
        (gymnasium.spaces.Box(-1, 1, (2,)), gymnasium.spaces.MultiBinary(2), "Discrete(n)"),
    ],
)
def test_from_spaces_refuses_other_spaces(
    observation_space: gymnasium.Space, action_space: gymnasium.Space, fragment: str
) -> None:
    with pytest.raises(ValueError, match=r"Contract\.from_spaces") as caught:
        Contract.from_spaces(observation_space, action_space)
    assert fragment in str(caught.value)


def test_overrides_field_by_field() -> None:
    env = gymnasium.make("CartPole-v1")
    contract = Contract.from_spaces(
        env.observation_space, env.action_space, reward_range=(0.0, 1.0), exclusive_flags=True
    )
    assert contract.reward_range == (0.0, 1.0) and contract.exclusive_flags
    relaxed = contract.replace(finite_rewards=False, reward_range=None)
    assert not relaxed.finite_rewards and relaxed.reward_range is None
    assert relaxed.exclusive_flags and relaxed.observation_shape == (4,)
    check_transition(relaxed, batch(reward=torch.full((4,), float("inf"))))
    with pytest.raises(ContractViolation, match=r"reward\[env 0\] = 2.0 is outside the reward"):
        check_transition(contract, batch(reward=torch.full((4,), 2.0)))
    with pytest.raises(ValueError, match="unknown contract fields \\['reward_limits'\\]"):
        contract.replace(reward_limits=(0, 1))


def test_from_spec_env_matches_from_gymnasium_spaces() -> None:
    from_spec = Contract.from_spec_env(cartpole.environment())
    from_gym = cartpole_contract()
    for name in ("observation_shape", "n_actions", "observation_dtype"):
        assert getattr(from_spec, name) == getattr(from_gym, name)
    np.testing.assert_array_equal(from_spec.observation_low, from_gym.observation_low)
    np.testing.assert_array_equal(from_spec.observation_high, from_gym.observation_high)
    grid = Contract.from_spec_env(gridworld.environment())
    assert grid.n_actions == 4 and grid.observation_shape == (16,)


def test_contract_refuses_inconsistent_bounds() -> None:
    with pytest.raises(ValueError, match="must not exceed"):
        spec_contract.Contract((2,), 2, observation_low=1.0, observation_high=0.0)
    with pytest.raises(ValueError, match="broadcast to the observation shape"):
        spec_contract.Contract((2,), 2, observation_low=np.zeros(3))
    with pytest.raises(ValueError, match="reward_range"):
        spec_contract.Contract((2,), 2, reward_range=(1.0, 0.0))


def test_bfloat16_observations_are_a_dtype_violation() -> None:
    observation = torch.zeros(4, 4, dtype=torch.bfloat16)
    with pytest.raises(ContractViolation, match=r"observation\[step 0\] has dtype bfloat16"):
        check_transition(
            cartpole_contract(),
            batch(observation=observation, next_observation=observation),
            step=0,
        )


def test_check_observation_for_resets() -> None:
    contract = cartpole_contract()
    check_observation(contract, torch.zeros(2, 4))
    observation = torch.zeros(2, 4)
    observation[1, 3] = float("-inf")
    with pytest.raises(ContractViolation, match=r"observation\[env 1\] entry 3 = -inf"):
        check_observation(contract, observation)
    with pytest.raises(ContractViolation, match=r"has shape \(2, 3\), expected \(N, 4\)"):
        check_observation(contract, torch.zeros(2, 3))


def test_empty_batch_is_valid() -> None:
    check_transition(cartpole_contract(), batch(0))


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_bounds_between_representable_values_are_exact(dtype: type) -> None:
    """A float64 bound of 0.1 lies between two values of the observation dtype."""
    contract = spec_contract.Contract((1,), 2, observation_dtype=dtype, observation_high=0.1)
    nearest = dtype(0.1)
    below = np.nextafter(nearest, dtype(-1.0)) if np.float64(nearest) > 0.1 else nearest
    above = np.nextafter(below, dtype(1.0))
    assert np.float64(below) <= 0.1 < np.float64(above)
    for value, valid in ((below, True), (above, False)):
        observation = torch.from_numpy(np.full((2, 1), value, dtype=dtype))
        transition = batch(2, observation=observation, next_observation=observation)
        if valid:
            check_transition(contract, transition)
            check_observation(contract, observation)
        else:
            with pytest.raises(ContractViolation, match="is out of bounds"):
                check_transition(contract, transition)
            with pytest.raises(ContractViolation, match="is out of bounds"):
                check_observation(contract, observation)


def test_signed_zero_bounds_are_one_point() -> None:
    contract = spec_contract.Contract((1,), 2, observation_low=0.0, observation_high=-0.0)
    zeros = torch.zeros(2, 1)
    check_transition(contract, batch(2, observation=zeros, next_observation=-zeros))


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_accelerator_path_agrees_with_spec(
    monkeypatch: pytest.MonkeyPatch, corruption: str
) -> None:
    """The fast check's path for accelerators (reductions on the device, one transfer), run on
    the CPU: it must agree with the reference exactly as the CPU path does."""
    from checked_rl.runtime.contract import extremes

    monkeypatch.setattr(extremes, "_host_extremes", extremes._device_extremes)
    check_agrees_with_violations(check_transition, corruptions=(corruption,))()


def test_check_transition_names_a_wrong_argument() -> None:
    expected = r"transition must be a checked_rl\.runtime\.contract\.Transition"
    with pytest.raises(TypeError, match=expected):
        check_transition(cartpole_contract(), batch().numpy())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"contract must be a checked_rl\.spec\.contract\.Contract"):
        check_transition({"n_actions": 2}, batch())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="step must be an int or None, got '3'"):
        check_transition(cartpole_contract(), batch(), step="3")  # type: ignore[arg-type]


# Host values: what Python environments hand over one environment at a time

HOST_CONTRACT = Contract(observation_shape=(3,), n_actions=2, observation_dtype=np.float32)


def test_check_host_observations_stacks_valid_observations_on_the_cpu() -> None:
    observations = [np.full(3, i, dtype=np.float32) for i in range(2)]
    stacked = check_host_observations(HOST_CONTRACT, observations, field="observation", step=None)
    assert stacked.device == torch.device("cpu") and stacked.dtype == torch.float32
    assert torch.equal(stacked, torch.tensor([[0.0] * 3, [1.0] * 3]))


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (
            np.zeros(4, dtype=np.float32),
            "next_observation[env 1, step 5] has shape (4,), expected (3,)",
        ),
        (
            np.zeros(3, dtype=np.float64),
            "next_observation[env 1, step 5] has dtype float64, expected float32",
        ),
        (
            np.zeros(4, dtype=np.float64),
            "next_observation[env 1, step 5] has shape (4,), expected (3,)",
        ),
    ],
)
def test_check_host_observations_names_the_first_wrong_environment(wrong, message) -> None:
    observations = [np.zeros(3, dtype=np.float32), wrong, wrong]
    with pytest.raises(ContractViolation) as caught:
        check_host_observations(HOST_CONTRACT, observations, field="next_observation", step=5)
    assert str(caught.value) == f"contract violation: {message}"
    assert (caught.value.violation.env, caught.value.violation.step) == (1, 5)


def test_observation_structure_violation_reads_a_bridge_reply() -> None:
    shape = observation_structure_violation(
        HOST_CONTRACT, "shape", [4], field="next_observation", env=2, step=7
    )
    dtype = observation_structure_violation(
        HOST_CONTRACT, "dtype", "float64", field="observation", env=0, step=None
    )
    assert (
        str(shape)
        == "contract violation: next_observation[env 2, step 7] has shape (4,), expected (3,)"
    )
    assert (
        str(dtype) == "contract violation: observation[env 0] has dtype float64, expected float32"
    )
    assert dtype.violation.value == np.dtype(np.float64)
    with pytest.raises(ValueError, match="kind must be 'shape' or 'dtype', got 'bounds'"):
        observation_structure_violation(
            HOST_CONTRACT, "bounds", 1.0, field="observation", env=0, step=0
        )


def test_real_reward_accepts_real_numbers_and_names_anything_else() -> None:
    rewards = [real_reward(value, env=0, step=0) for value in (1, np.float32(0.5), True)]
    assert rewards == [1.0, 0.5, 1.0] and all(type(reward) is float for reward in rewards)
    for value, kind in (("one", "str"), (None, "NoneType"), (1j, "complex")):
        with pytest.raises(ContractViolation) as caught:
            real_reward(value, env=3, step=4)
        assert str(caught.value) == (
            f"contract violation: reward[env 3, step 4] has dtype {kind}, expected a real number"
        )
