"""`runtime.distributions` and `runtime.ppo.loss` agree with the spec; the loss's gradient is
right; bad arguments are rejected with the argument's name."""

import pytest
import torch
from hypothesis import Phase, settings

from checked_rl.properties.distributions import (
    entropy_matches_spec,
    greedy_matches_spec,
    log_prob_matches_spec,
    log_softmax_matches_spec,
    sample_matches_spec,
)
from checked_rl.properties.ppo import (
    ppo_gradient_matches_finite_differences,
    ppo_loss_matches_spec,
    ppo_loss_rejects_mismatched_arguments,
)
from checked_rl.runtime import distributions
from checked_rl.runtime.ppo import loss

test_log_softmax_matches_spec_float64 = log_softmax_matches_spec(distributions.log_softmax)
test_log_softmax_matches_spec_float32 = log_softmax_matches_spec(
    distributions.log_softmax, dtype=torch.float32
)
test_log_prob_matches_spec = log_prob_matches_spec(distributions.log_prob)
test_entropy_matches_spec_float64 = entropy_matches_spec(distributions.entropy)
test_entropy_matches_spec_float32 = entropy_matches_spec(
    distributions.entropy, dtype=torch.float32
)
test_greedy_matches_spec = greedy_matches_spec(distributions.greedy)
test_sample_matches_spec_float64 = sample_matches_spec(distributions.sample)
test_sample_matches_spec_float32 = sample_matches_spec(distributions.sample, dtype=torch.float32)

test_ppo_loss_matches_spec_float64 = ppo_loss_matches_spec(loss.ppo_loss)
test_ppo_loss_matches_spec_float32 = ppo_loss_matches_spec(loss.ppo_loss, dtype=torch.float32)
test_ppo_gradient_matches_finite_differences = ppo_gradient_matches_finite_differences(
    loss.ppo_loss
)
test_ppo_loss_rejects_mismatched_arguments = ppo_loss_rejects_mismatched_arguments(loss.ppo_loss)


def test_entropy_gradient_is_finite_with_impossible_actions() -> None:
    logits = torch.tensor([[0.0, -float("inf"), 1.0]], requires_grad=True)
    distributions.entropy(logits).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 1] == 0.0


def test_sample_actions_is_reproducible_and_skips_impossible_actions() -> None:
    logits = torch.tensor([[0.0, -float("inf"), 0.0]]).expand(1000, 3)
    first = distributions.sample_actions(logits, torch.Generator().manual_seed(7))
    second = distributions.sample_actions(logits, torch.Generator().manual_seed(7))
    assert torch.equal(first, second)
    assert set(first.tolist()) == {0, 2}


def test_sample_at_the_top_of_the_unit_interval_draws_the_last_possible_action() -> None:
    logits = torch.tensor([[0.0, 0.0, -float("inf")]], dtype=torch.float64)
    u = torch.tensor([1.0 - 2.0**-53], dtype=torch.float64)
    assert distributions.sample(logits, u).tolist() == [1]


def test_log_prob_names_actions_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 3\)"):
        distributions.log_prob(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_log_prob_names_actions_of_the_wrong_shape() -> None:
    with pytest.raises(TypeError, match="parameter 'actions'"):
        distributions.log_prob(torch.zeros(2, 3), torch.tensor([0, 1, 2]))


def test_ppo_loss_names_a_per_sample_argument_of_the_wrong_shape() -> None:
    kwargs = dict(
        logits=torch.zeros(4, 2),
        actions=torch.zeros(4, dtype=torch.int64),
        old_log_probs=torch.zeros(4),
        advantages=torch.zeros(4),
        values=torch.zeros(5),
        returns=torch.zeros(4),
    )
    with pytest.raises(TypeError, match="parameter 'values'"):
        loss.ppo_loss(**kwargs)


def test_value_clipping_needs_old_values() -> None:
    with pytest.raises(ValueError, match="needs old_values"):
        loss.value_loss(torch.zeros(3), torch.zeros(3), clip_coef=0.2)


def test_ppo_stats_are_detached() -> None:
    logits = torch.zeros(3, 2, requires_grad=True)
    values = torch.zeros(3, requires_grad=True)
    total, stats = loss.ppo_loss(
        logits=logits,
        actions=torch.tensor([0, 1, 0]),
        old_log_probs=torch.full((3,), -0.5),
        advantages=torch.tensor([1.0, -1.0, 0.5]),
        values=values,
        returns=torch.ones(3),
    )
    assert total.requires_grad
    assert not any(s.requires_grad for s in stats)


FIND_FAULT = settings(max_examples=200, database=None, phases=[Phase.generate])
"""Settings for running a property on a faulty implementation: long enough to find the fault."""


def test_agreement_with_spec_catches_finite_log_probabilities_of_impossible_actions() -> None:
    def floored_log_softmax(logits: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(logits.clamp(min=-1e9), dim=-1)

    with pytest.raises(AssertionError, match="log_softmax: infinite entries"):
        FIND_FAULT(log_softmax_matches_spec(floored_log_softmax))()


def test_rejection_property_catches_a_loss_that_accepts_any_shape() -> None:
    def unchecked_loss(**kwargs: object) -> tuple[torch.Tensor, None]:
        return torch.zeros(()), None

    with pytest.raises(AssertionError, match="was accepted"):
        FIND_FAULT(ppo_loss_rejects_mismatched_arguments(unchecked_loss))()
