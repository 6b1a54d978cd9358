"""The laws of `spec.returns`, and the issue's worked examples."""

import numpy as np
import pytest

from checked_rl.properties.returns_laws import (
    gae_is_discounted_sum_of_residuals,
    gae_lam_one_is_monte_carlo_minus_values,
    gae_lam_zero_is_td_residual,
    lambda_returns_are_advantages_plus_values,
    normalized_advantages_are_standardized,
    truncation_bootstraps_termination_does_not,
)
from checked_rl.spec import returns

test_lam_one_is_monte_carlo_minus_values = gae_lam_one_is_monte_carlo_minus_values(
    returns.gae, returns.discounted_returns
)
test_lam_zero_is_td_residual = gae_lam_zero_is_td_residual(returns.gae, returns.td_residuals)
test_gae_is_discounted_sum_of_residuals = gae_is_discounted_sum_of_residuals(
    returns.gae, returns.td_residuals
)
test_truncation_bootstraps_termination_does_not = truncation_bootstraps_termination_does_not(
    returns.gae
)
test_lambda_returns_are_advantages_plus_values = lambda_returns_are_advantages_plus_values(
    returns.lambda_returns, returns.gae
)
test_normalized_advantages_are_standardized = normalized_advantages_are_standardized(
    returns.normalize_advantages
)

NO = [False, False, False]


def test_returns_of_the_issue_example() -> None:
    got = returns.discounted_returns(
        rewards=[1.0, 2.0, 3.0], next_values=[0.0] * 3, terminated=NO, truncated=NO, gamma=0.5
    )
    np.testing.assert_array_equal(got, [2.75, 3.5, 3.0])


def test_returns_stop_at_termination_and_bootstrap_at_truncation() -> None:
    # Episode 1 terminates at step 0: G_0 = 1. Episode 2 is truncated at step 1 with
    # V(final) = 10: G_1 = 2 + 0.5 * 10 = 7. Step 2 ends the trace: G_2 = 3 + 0.5 * 4 = 5.
    got = returns.discounted_returns(
        rewards=[1.0, 2.0, 3.0],
        next_values=[100.0, 10.0, 4.0],
        terminated=[True, False, False],
        truncated=[False, True, False],
        gamma=0.5,
    )
    np.testing.assert_array_equal(got, [1.0, 7.0, 5.0])


def test_gae_is_textbook_without_truncation() -> None:
    # gamma = lam = 1, no flags: A_t = sum of rewards from t + V(last next) - V_t.
    got = returns.gae(
        rewards=[1.0, 1.0],
        values=[0.0, 0.0],
        next_values=[0.0, 5.0],
        terminated=[False, False],
        truncated=[False, False],
        gamma=1.0,
        lam=1.0,
    )
    np.testing.assert_array_equal(got, [7.0, 6.0])


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("values", [1.0], "values must have length T = 2"),
        ("terminated", [0.0, 1.0], "terminated must be a bool array"),
        ("rewards", [[1.0, 2.0]], "rewards must be a 1-D array"),
        ("gamma", 1.5, "gamma must lie in"),
        ("lam", -0.1, "lam must lie in"),
    ],
)
def test_spec_rejects_bad_arguments(argument: str, value: object, message: str) -> None:
    kwargs = dict(
        rewards=[1.0, 2.0],
        values=[0.0, 0.0],
        next_values=[0.0, 0.0],
        terminated=[False, False],
        truncated=[False, False],
        gamma=0.9,
        lam=0.9,
    )
    kwargs[argument] = value
    with pytest.raises(ValueError, match=message):
        returns.gae(**kwargs)
