"""`runtime.returns` agrees with `spec.returns`, obeys its laws, and rejects bad arguments."""

import pytest
import torch
from hypothesis import Phase, settings

from checked_rl.properties import returns as properties_returns
from checked_rl.properties import returns_laws, tolerances
from checked_rl.properties.returns import (
    discounted_returns_match_spec,
    gae_matches_spec,
    lambda_returns_match_spec,
    normalize_matches_spec,
    on_trace,
    rejects_mismatched_arguments,
    td_residuals_match_spec,
)
from checked_rl.properties.returns_laws import (
    gae_is_discounted_sum_of_residuals,
    gae_lam_one_is_monte_carlo_minus_values,
    gae_lam_zero_is_td_residual,
    truncation_bootstraps_termination_does_not,
)
from checked_rl.runtime import returns, scans

test_gae_matches_spec_float64 = gae_matches_spec(returns.gae)
test_gae_matches_spec_float32 = gae_matches_spec(returns.gae, dtype=torch.float32)
test_lambda_returns_match_spec = lambda_returns_match_spec(returns.lambda_returns)
test_td_residuals_match_spec = td_residuals_match_spec(returns.td_residuals)
test_discounted_returns_match_spec_float64 = discounted_returns_match_spec(
    returns.discounted_returns
)
test_discounted_returns_match_spec_float32 = discounted_returns_match_spec(
    returns.discounted_returns, dtype=torch.float32
)
test_normalize_matches_spec_float64 = normalize_matches_spec(returns.normalize_advantages)
test_normalize_matches_spec_float32 = normalize_matches_spec(
    returns.normalize_advantages, dtype=torch.float32
)

test_runtime_lam_one_is_monte_carlo_minus_values = gae_lam_one_is_monte_carlo_minus_values(
    on_trace(returns.gae), on_trace(returns.discounted_returns)
)
test_runtime_lam_zero_is_td_residual = gae_lam_zero_is_td_residual(
    on_trace(returns.gae), on_trace(returns.td_residuals)
)
test_runtime_gae_is_discounted_sum_of_residuals = gae_is_discounted_sum_of_residuals(
    on_trace(returns.gae), on_trace(returns.td_residuals)
)
test_runtime_truncation_bootstraps_termination_does_not = (
    truncation_bootstraps_termination_does_not(on_trace(returns.gae))
)

test_gae_rejects_mismatched_arguments = rejects_mismatched_arguments(returns.gae, "gae")
test_returns_reject_mismatched_arguments = rejects_mismatched_arguments(
    returns.discounted_returns, "discounted_returns"
)


def _rollout(n_steps: int, n_envs: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(n_steps * 1000 + n_envs)
    shape = (n_steps, n_envs)
    return dict(
        rewards=torch.randn(shape, generator=generator, dtype=torch.float64),
        values=torch.randn(shape, generator=generator, dtype=torch.float64),
        next_values=torch.randn(shape, generator=generator, dtype=torch.float64),
        terminated=torch.rand(shape, generator=generator) < 0.05,
        truncated=torch.rand(shape, generator=generator) < 0.05,
    )


@pytest.mark.parametrize("n_steps", [0, 1, 2, 7, 8, 9, 50, 200, 513])
def test_gae_blocked_scan_matches_a_plain_loop(n_steps: int) -> None:
    # Every blocking of runtime.returns' scan (no block, partial lead, many blocks) against
    # the recurrence run step by step in float64.
    rollout = _rollout(n_steps, 3)
    got = returns.gae(**rollout, gamma=0.99, lam=0.95)
    delta = returns.td_residuals(
        **{k: v for k, v in rollout.items() if k != "truncated"}, gamma=0.99
    )
    done = rollout["terminated"] | rollout["truncated"]
    want = torch.zeros_like(delta)
    running = torch.zeros(3, dtype=torch.float64)
    for t in reversed(range(n_steps)):
        running = delta[t] + torch.where(done[t], 0.0, 0.99 * 0.95 * running)
        want[t] = running
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_chunked_scans_match_spec() -> None:
    # With tiny chunks, every rollout of the strategies is cut into several time chunks, each
    # scanned from the first row of the chunk after it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scans, "CHUNK_ELEMENTS", 8)
        gae_matches_spec(returns.gae)()
        discounted_returns_match_spec(returns.discounted_returns)()
        test_gae_blocked_scan_matches_a_plain_loop(200)


def test_row_scans_match_spec() -> None:
    # Every batch takes the per-row path of wide batches, in pieces of a few rows.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scans, "ROW_SCAN_MIN_ENVS", 1)
        patch.setattr(scans, "PIECE_ELEMENTS", 8)
        gae_matches_spec(returns.gae)()
        discounted_returns_match_spec(returns.discounted_returns)()
        test_gae_blocked_scan_matches_a_plain_loop(200)


def test_gae_rejects_a_discount_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="gae: lam must lie in"):
        returns.gae(**_rollout(4, 2), gamma=0.9, lam=1.5)


def test_normalize_rejects_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        returns.normalize_advantages(torch.zeros(0, 3))


FIND_FAULT = settings(max_examples=200, database=None, phases=[Phase.generate])
"""Settings for running a property on a faulty implementation: long enough to find the fault."""


def done_only_gae(*, rewards, values, next_values, terminated, truncated, gamma, lam):
    """A GAE that knows only `done`: it stops bootstrapping at a time limit too (the guide's
    example, which docs/guides/properties.md shows `gae_matches_spec` catching)."""
    done = (terminated | truncated).to(rewards.dtype)
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * (1 - done[t]) * next_values[t] - values[t]
        next_advantage = delta + gamma * lam * (1 - done[t]) * next_advantage
        advantages[t] = next_advantage
    return advantages


def test_truncation_law_catches_a_done_only_gae() -> None:
    with pytest.raises(AssertionError, match="the bootstrap of truncated step"):
        FIND_FAULT(truncation_bootstraps_termination_does_not(on_trace(done_only_gae)))()


def test_rejection_property_catches_a_gae_that_accepts_anything() -> None:
    with pytest.raises(AssertionError, match="was accepted"):
        FIND_FAULT(rejects_mismatched_arguments(done_only_gae))()


def test_rejection_property_catches_an_error_that_names_no_argument() -> None:
    def vague_gae(**kwargs: object) -> torch.Tensor:
        raise ValueError("bad arguments")

    with pytest.raises(AssertionError, match="the error does not name"):
        FIND_FAULT(rejects_mismatched_arguments(vague_gae))()


def test_the_guide_imports_every_returns_property_from_properties_returns() -> None:
    # docs/guides/properties.md documents the laws and the tolerance helpers under
    # checked_rl.properties.returns; they live in returns_laws and tolerances.
    for module in (returns_laws, tolerances):
        for name in set(module.__all__) & set(properties_returns.__all__):
            assert getattr(properties_returns, name) is getattr(module, name), name
    assert set(returns_laws.__all__) <= set(properties_returns.__all__)
