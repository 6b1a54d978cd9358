"""The kit accepts code that is right on every real rollout, and still catches wrong code.

The returns properties draw consistent rollouts by default (`next_values[t] == values[t + 1]`
inside an episode, as environments produce them), so the textbook TD(lambda) recursion, which
takes `V(s_{t+1})` from `values[t + 1]`, passes them; a broken recursion fails them. With
`consistent=False` they draw general rollouts, which `runtime.returns` (it reads `next_values`
at every step) passes and the recursion does not.
"""

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings

from checked_rl.properties.returns import (
    gae_is_discounted_sum_of_residuals,
    gae_lam_one_is_monte_carlo_minus_values,
    gae_lam_zero_is_td_residual,
    gae_matches_spec,
    lambda_returns_are_advantages_plus_values,
    lambda_returns_match_spec,
    on_trace,
    td_residuals_match_spec,
    truncation_bootstraps_termination_does_not,
)
from checked_rl.properties.strategies import RolloutArrays, consistent_rollouts, rollouts
from checked_rl.runtime import returns

FIND_FAULT = settings(max_examples=300, database=None, phases=[Phase.generate])
"""Settings for running a property on a faulty implementation: long enough to find the fault."""


def td_lambda_returns(*, rewards, values, next_values, terminated, truncated, gamma, lam):
    """The textbook TD(lambda) recursion over `[T, N]` tensors:
    `G_t = r_t + gamma * ((1 - lam) * V(s_{t+1}) + lam * G_{t+1})` inside an episode, with
    `V(s_{t+1})` taken as `values[t + 1]`; where the trace stops (a termination, a truncation,
    the last step) `G_t = r_t + gamma * (1 - terminated_t) * next_values[t]`."""
    n_steps = rewards.shape[0]
    targets = torch.empty_like(rewards)
    for t in reversed(range(n_steps)):
        stop = terminated[t] | truncated[t]
        if t + 1 < n_steps:
            inside = (1 - lam) * values[t + 1] + lam * targets[t + 1]
            bootstrap = torch.where(stop, next_values[t], inside)
        else:
            bootstrap = next_values[t]
        targets[t] = rewards[t] + gamma * torch.where(terminated[t], 0.0, bootstrap)
    return targets


def truncation_blind_td_lambda_returns(
    *, rewards, values, next_values, terminated, truncated, gamma, lam
):
    """A broken recursion: it runs on through a truncation into the next episode, bootstrapping
    from the value of the reset observation instead of the truncated episode's last one."""
    n_steps = rewards.shape[0]
    targets = torch.empty_like(rewards)
    for t in reversed(range(n_steps)):
        if t + 1 < n_steps:
            bootstrap = (1 - lam) * values[t + 1] + lam * targets[t + 1]
        else:
            bootstrap = next_values[t]
        targets[t] = rewards[t] + gamma * torch.where(terminated[t], 0.0, bootstrap)
    return targets


def _advantages(lambda_returns):
    """The GAE that a lambda-return implementation implies: `G - V`."""

    def gae(**kwargs):
        return lambda_returns(**kwargs) - kwargs["values"]

    return gae


td_lambda_gae = _advantages(td_lambda_returns)

# The default kit, on the correct recursion.
test_td_lambda_matches_spec = lambda_returns_match_spec(td_lambda_returns)
test_td_lambda_matches_spec_float32 = lambda_returns_match_spec(
    td_lambda_returns, dtype=torch.float32
)
test_td_lambda_gae_matches_spec = gae_matches_spec(td_lambda_gae)
test_td_lambda_are_advantages_plus_values = lambda_returns_are_advantages_plus_values(
    on_trace(td_lambda_returns), on_trace(returns.gae)
)
test_td_lambda_gae_is_discounted_sum_of_residuals = gae_is_discounted_sum_of_residuals(
    on_trace(td_lambda_gae), on_trace(returns.td_residuals)
)
test_td_lambda_gae_lam_zero_is_td_residual = gae_lam_zero_is_td_residual(
    on_trace(td_lambda_gae), on_trace(returns.td_residuals)
)
test_td_lambda_gae_lam_one_is_monte_carlo_minus_values = gae_lam_one_is_monte_carlo_minus_values(
    on_trace(td_lambda_gae), on_trace(returns.discounted_returns)
)
test_td_lambda_truncation_bootstraps = truncation_bootstraps_termination_does_not(
    on_trace(td_lambda_gae)
)

# runtime.returns reads next_values at every step: it passes the general strategy too.
test_runtime_gae_matches_spec_on_general_rollouts = gae_matches_spec(returns.gae, consistent=False)
test_runtime_gae_matches_spec_on_general_rollouts_float32 = gae_matches_spec(
    returns.gae, dtype=torch.float32, consistent=False
)
test_runtime_lambda_returns_match_spec_on_general_rollouts = lambda_returns_match_spec(
    returns.lambda_returns, consistent=False
)
test_runtime_td_residuals_match_spec_on_general_rollouts = td_residuals_match_spec(
    returns.td_residuals, consistent=False
)
test_runtime_gae_is_discounted_sum_of_residuals_on_general_traces = (
    gae_is_discounted_sum_of_residuals(
        on_trace(returns.gae), on_trace(returns.td_residuals), consistent=False
    )
)
test_runtime_truncation_law_on_general_traces = truncation_bootstraps_termination_does_not(
    on_trace(returns.gae), consistent=False
)


@pytest.mark.parametrize(
    "check",
    [
        lambda fn: lambda_returns_match_spec(fn),
        lambda fn: lambda_returns_match_spec(fn, dtype=torch.float32),
        lambda fn: truncation_bootstraps_termination_does_not(on_trace(_advantages(fn))),
    ],
    ids=["matches_spec", "matches_spec_float32", "truncation_law"],
)
def test_the_default_kit_catches_a_recursion_blind_to_truncation(check) -> None:
    with pytest.raises(AssertionError):
        FIND_FAULT(check(truncation_blind_td_lambda_returns))()


def test_the_general_strategy_rejects_the_recursion_it_does_not_claim() -> None:
    # Inside an episode the recursion reads values[t + 1]; general rollouts have a different
    # next_values[t] there, which the spec uses: this is what consistent=False is for.
    with pytest.raises(AssertionError, match="lambda_returns"):
        FIND_FAULT(lambda_returns_match_spec(td_lambda_returns, consistent=False))()


@given(arrays=consistent_rollouts())
def test_consistent_rollouts_differ_only_where_an_episode_ends(arrays: RolloutArrays) -> None:
    inside = ~(arrays.terminated | arrays.truncated)[:-1]
    np.testing.assert_array_equal(arrays.next_values[:-1][inside], arrays.values[1:][inside])


def test_general_rollouts_differ_inside_episodes() -> None:
    found = []

    @FIND_FAULT
    @given(arrays=rollouts())
    def look(arrays: RolloutArrays) -> None:
        inside = ~(arrays.terminated | arrays.truncated)[:-1]
        found.append(bool(np.any(arrays.next_values[:-1][inside] != arrays.values[1:][inside])))

    look()
    assert any(found)
