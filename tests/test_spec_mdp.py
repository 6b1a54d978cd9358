"""The laws of `spec.mdp`'s solvers on random tabular MDPs, and hand-solved cases."""

import numpy as np
import pytest

from checked_rl.properties.mdp import (
    greedy_policy_of_optimal_values_is_optimal,
    optimal_values_dominate_every_policy,
    optimality_operator_is_monotone_contraction,
    policy_evaluation_is_fixed_point,
    policy_operator_is_monotone_contraction,
    value_iteration_converges_within_gamma_power,
)
from checked_rl.spec import mdp

test_policy_operator_is_monotone_contraction = policy_operator_is_monotone_contraction(
    mdp.bellman_policy_operator
)
test_optimality_operator_is_monotone_contraction = optimality_operator_is_monotone_contraction(
    mdp.bellman_optimality_operator
)
test_policy_evaluation_is_fixed_point = policy_evaluation_is_fixed_point(
    mdp.policy_evaluation, mdp.bellman_policy_operator
)
test_value_iteration_converges_within_gamma_power = value_iteration_converges_within_gamma_power(
    mdp.value_iteration, mdp.policy_iteration
)
test_optimal_values_dominate_every_policy = optimal_values_dominate_every_policy(
    mdp.policy_iteration, mdp.policy_evaluation
)
test_greedy_policy_of_optimal_values_is_optimal = greedy_policy_of_optimal_values_is_optimal(
    mdp.greedy_policy, mdp.policy_evaluation, mdp.bellman_optimality_operator, mdp.policy_iteration
)


def _chain(length: int) -> mdp.TabularMDP:
    """States 0 .. length; one action moves right with reward -1; the last state is terminal."""
    n = length + 1
    transitions = np.zeros((n, 1, n))
    for s in range(n):
        transitions[s, 0, min(s + 1, length)] = 1.0
    rewards = np.full((n, 1), -1.0)
    terminal = np.zeros(n, dtype=bool)
    terminal[length] = True
    return mdp.TabularMDP(P=transitions, R=rewards, terminal=terminal)


def test_undiscounted_chain_values_count_the_steps_left() -> None:
    chain = _chain(4)
    v = mdp.policy_evaluation(chain, np.ones((5, 1)), gamma=1.0)
    np.testing.assert_allclose(v, [-4.0, -3.0, -2.0, -1.0, 0.0], rtol=0, atol=1e-12)
    result = mdp.value_iteration(chain, gamma=1.0, tol=0.0)
    np.testing.assert_array_equal(result.values, [-4.0, -3.0, -2.0, -1.0, 0.0])
    assert result.iterations == 5  # four sweeps to propagate, one to see no change


def test_value_iteration_stops_at_max_iterations() -> None:
    result = mdp.value_iteration(_chain(4), gamma=1.0, tol=0.0, max_iterations=2)
    np.testing.assert_array_equal(result.values, [-2.0, -2.0, -2.0, -1.0, 0.0])
    assert result.iterations == 2


def test_a_policy_that_never_ends_has_no_undiscounted_value() -> None:
    stay = mdp.stay_or_go()
    with pytest.raises(ValueError, match="singular"):
        mdp.policy_evaluation(stay, np.array([[1.0, 0.0], [1.0, 0.0]]), gamma=1.0)


@pytest.mark.parametrize(
    ("pi", "message"),
    [(np.ones((2, 3)) / 3, r"pi must have shape \[S, A\]"), (np.ones((2, 2)), "distribution")],
)
def test_bad_policies_are_rejected(pi: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mdp.policy_evaluation(mdp.stay_or_go(), pi, gamma=0.5)
