"""`runtime.ppo.loss.ppo_loss_from_log_probs` agrees with the spec, values and gradient; the
logits form is exactly it applied to categorical log-probabilities; buggy losses fail."""

import pytest
import torch
from hypothesis import Phase, settings

from checked_rl.properties.ppo import (
    ppo_log_prob_gradient_matches_finite_differences,
    ppo_loss_from_log_probs_matches_spec,
)
from checked_rl.runtime import distributions, gaussian
from checked_rl.runtime.ppo import loss

test_ppo_loss_from_log_probs_matches_spec_float64 = ppo_loss_from_log_probs_matches_spec(
    loss.ppo_loss_from_log_probs
)
test_ppo_loss_from_log_probs_matches_spec_float32 = ppo_loss_from_log_probs_matches_spec(
    loss.ppo_loss_from_log_probs, dtype=torch.float32
)
test_ppo_log_prob_gradient_matches_finite_differences = (
    ppo_log_prob_gradient_matches_finite_differences(loss.ppo_loss_from_log_probs)
)

FIND_FAULT = settings(max_examples=200, database=None, phases=[Phase.generate])
"""Settings for running a property on a faulty implementation: long enough to find the fault."""


def _data(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {name: torch.randn(6, generator=generator, dtype=torch.float64)
            for name in ("old_log_probs", "advantages", "values", "returns", "old_values")}


def test_the_logits_form_is_the_log_prob_form_of_the_categorical_policy() -> None:
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 3, generator=generator)
    actions = torch.randint(3, (6,), generator=generator)
    data = {name: value.float() for name, value in _data(generator).items()}
    settings_ = dict(value_clip_coef=0.2, entropy_coef=0.05)
    total, stats = loss.ppo_loss(logits=logits, actions=actions, **data, **settings_)
    want_total, want_stats = loss.ppo_loss_from_log_probs(
        new_log_probs=distributions.log_prob(logits, actions),
        entropies=distributions.entropy(logits), **data, **settings_,
    )
    assert torch.equal(total, want_total)
    assert all(torch.equal(a, b) for a, b in zip(stats, want_stats, strict=True))


def test_a_gaussian_policy_backpropagates_into_its_mean_and_log_std() -> None:
    generator = torch.Generator().manual_seed(4)
    mean = torch.randn(6, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    log_std = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    actions = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    total, stats = loss.ppo_loss_from_log_probs(
        new_log_probs=gaussian.log_prob(mean, log_std, actions),
        entropies=gaussian.entropy(mean, log_std), **_data(generator),
    )
    total.backward()
    assert mean.grad is not None and bool(mean.grad.abs().sum() > 0)
    assert log_std.grad is not None and bool(log_std.grad.abs().sum() > 0)
    assert float(stats.entropy) == pytest.approx(2 * 1.4189385332046727)


def _summed_entropy_loss(**kwargs: torch.Tensor) -> tuple[torch.Tensor, loss.PPOStats]:
    """Buggy: the entropy bonus sums the entropies instead of averaging them."""
    entropies = kwargs["entropies"]
    total, stats = loss.ppo_loss_from_log_probs(**kwargs)
    coef = kwargs.get("entropy_coef", 0.01)
    bonus = entropies.sum()
    total = total + coef * entropies.mean() - coef * bonus
    return total, stats._replace(entropy=bonus.detach())


def _entropy_without_gradient_loss(**kwargs: torch.Tensor) -> tuple[torch.Tensor, loss.PPOStats]:
    """Buggy: the entropies come detached (computed under `no_grad`, as for logging): right
    values, but the bonus no longer pushes the policy."""
    return loss.ppo_loss_from_log_probs(**{**kwargs, "entropies": kwargs["entropies"].detach()})


def test_the_value_property_catches_a_summed_entropy() -> None:
    with pytest.raises(AssertionError, match="entropy"):
        FIND_FAULT(ppo_loss_from_log_probs_matches_spec(_summed_entropy_loss))()


def test_the_gradient_property_catches_a_detached_entropy() -> None:
    FIND_FAULT(ppo_loss_from_log_probs_matches_spec(_entropy_without_gradient_loss))()
    with pytest.raises(AssertionError, match="d loss / d entropies"):
        FIND_FAULT(ppo_log_prob_gradient_matches_finite_differences(
            _entropy_without_gradient_loss))()
