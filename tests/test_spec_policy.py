"""The laws of `spec.distributions` and `spec.ppo`, and hand-worked values."""

import numpy as np
import pytest

from checked_rl.properties.distributions import (
    entropy_is_bounded,
    log_softmax_is_normalized,
    sample_draws_each_action_with_its_probability,
)
from checked_rl.properties.ppo_laws import (
    approx_kl_is_nonnegative,
    clipped_surrogate_is_pessimistic,
    clipped_value_loss_bounds_unclipped,
)
from checked_rl.spec import distributions, ppo

test_log_softmax_is_normalized = log_softmax_is_normalized(distributions.log_softmax)
test_entropy_is_bounded = entropy_is_bounded(distributions.entropy)
test_sample_draws_each_action_with_its_probability = (
    sample_draws_each_action_with_its_probability(distributions.sample)
)
test_clipped_surrogate_is_pessimistic = clipped_surrogate_is_pessimistic(ppo.policy_loss)
test_approx_kl_is_nonnegative = approx_kl_is_nonnegative(ppo.approx_kl)
test_clipped_value_loss_bounds_unclipped = clipped_value_loss_bounds_unclipped(ppo.value_loss)


def test_log_softmax_does_not_overflow() -> None:
    np.testing.assert_allclose(
        distributions.log_softmax(np.array([1000.0, 1000.0])), np.log([0.5, 0.5])
    )


def test_sample_boundaries_go_to_the_action_above() -> None:
    # pi = [1/4, 3/4]: u = 0.25 is the boundary, and belongs to action 1.
    logits = np.array([[0.0, np.log(3.0)]] * 2)
    np.testing.assert_array_equal(distributions.sample(logits, np.array([0.2499, 0.25])), [0, 1])


def test_sample_never_draws_an_impossible_last_action() -> None:
    logits = np.array([[0.0, 0.0, -np.inf]])
    assert distributions.sample(logits, np.array([np.nextafter(1.0, 0.0)])).tolist() == [1]


@pytest.mark.parametrize(
    ("logits", "message"),
    [
        (np.array([np.nan, 0.0]), "finite or -inf"),
        (np.array([-np.inf, -np.inf]), "needs a finite logit"),
        (np.zeros((2, 0)), "A >= 1"),
    ],
)
def test_bad_logits_are_rejected(logits: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        distributions.log_softmax(logits)


def test_policy_loss_clips_only_in_the_direction_that_helps() -> None:
    # Negative advantage: r = 0.5 is clipped up to 0.8 (min(-0.5, -0.8) = -0.8); r = 1.5 keeps
    # min(-1.5, -1.2) = -1.5. The loss is -(-0.8 - 1.5) / 2 = 1.15.
    loss = ppo.policy_loss(np.log([0.5, 1.5]), np.zeros(2), -np.ones(2), clip_coef=0.2)
    assert loss == pytest.approx(1.15, rel=1e-15)


def test_total_loss_weights_its_terms() -> None:
    kwargs = dict(
        logits=np.array([[0.0, 1.0], [2.0, 0.0]]),
        actions=np.array([1, 0]),
        old_log_probs=np.array([-0.5, -0.3]),
        advantages=np.array([1.0, -2.0]),
        values=np.array([0.5, 1.5]),
        returns=np.array([1.0, 1.0]),
    )
    total, stats = ppo.ppo_loss(**kwargs, value_coef=0.7, entropy_coef=0.2)
    expected = stats.policy_loss + 0.7 * stats.value_loss - 0.2 * stats.entropy
    assert total == pytest.approx(expected, rel=1e-15)
    assert stats.value_loss == pytest.approx(0.5 * 0.25, rel=1e-15)
