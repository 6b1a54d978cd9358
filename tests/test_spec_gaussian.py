"""The laws of `spec.gaussian`, hand-worked values, refused inputs, and the PPO loss as one
definition over log-probabilities and entropies: a Gaussian policy's plug into it, in the spec
and through the runtime's loss terms (values and gradients)."""

import numpy as np
import pytest
import torch
from hypothesis import Phase, settings

from checked_rl.properties.gaussian import (
    kl_is_nonnegative_and_zero_between_equals,
    log_prob_of_a_sample_is_that_of_its_normals,
)
from checked_rl.properties.tolerances import FD_STEP, FD_TOL
from checked_rl.runtime import gaussian as runtime_gaussian
from checked_rl.runtime.ppo import loss as runtime_loss
from checked_rl.spec import distributions, gaussian, ppo

test_kl_is_nonnegative_and_zero_between_equals = kl_is_nonnegative_and_zero_between_equals(
    gaussian.kl_divergence
)
test_log_prob_of_a_sample_is_that_of_its_normals = log_prob_of_a_sample_is_that_of_its_normals(
    gaussian.log_prob, gaussian.sample
)

FIND_FAULT = settings(max_examples=200, database=None, phases=[Phase.generate])
"""Settings for running a property on a faulty implementation: long enough to find the fault."""


def kl_without_the_half(mean_p, log_std_p, mean_q, log_std_q):
    """Forgets the `-1/2` of each dimension."""
    d = np.broadcast_to(np.subtract(log_std_p, log_std_q), np.shape(mean_p))
    distance = (np.asarray(mean_p) - mean_q) * np.exp(-np.asarray(log_std_q))
    return np.sum(-d + 0.5 * np.exp(2 * d) + 0.5 * distance**2, axis=-1)


def log_prob_without_the_constant(mean, log_std, actions):
    """Forgets `0.5 * log(2 pi)` per dimension."""
    return gaussian.log_prob(mean, log_std, actions) + gaussian.HALF_LOG_2PI * np.shape(mean)[-1]


def test_the_kl_law_catches_a_kl_without_the_half() -> None:
    with pytest.raises(AssertionError, match=r"KL\(p \|\| p\)"):
        FIND_FAULT(kl_is_nonnegative_and_zero_between_equals(kl_without_the_half))()


def test_the_sample_law_catches_a_log_prob_without_its_constant() -> None:
    with pytest.raises(AssertionError, match="log_prob of a sample"):
        FIND_FAULT(
            log_prob_of_a_sample_is_that_of_its_normals(
                log_prob_without_the_constant, gaussian.sample
            )
        )()


def test_the_kl_of_nearby_distributions_keeps_its_digits() -> None:
    # d = s_p - s_q = 1e-10: KL = 0.5 * (exp(2 d) - 1 - 2 d) = d^2 + O(d^3) = 1e-20, which
    # exp(2 d) - 1 - 2 d in float64 rounds to nothing.
    kl = gaussian.kl_divergence(np.zeros(1), np.array([1e-10]), np.zeros(1), np.zeros(1))
    assert kl == pytest.approx(1e-20, rel=1e-8)
    runtime = runtime_gaussian.kl_divergence(
        torch.zeros(1, 1, dtype=torch.float64),
        torch.tensor([1e-10], dtype=torch.float64),
        torch.zeros(1, 1, dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
    )
    assert float(runtime[0]) == pytest.approx(1e-20, rel=1e-8)


def test_a_state_independent_log_std_broadcasts_over_the_batch() -> None:
    means = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    log_std = np.array([0.3, -0.2])
    actions = means + 0.1
    shared = gaussian.log_prob(means, log_std, actions)
    per_row = gaussian.log_prob(means, np.tile(log_std, (3, 1)), actions)
    np.testing.assert_array_equal(shared, per_row)
    assert gaussian.entropy(means, log_std).shape == (3,)
    assert gaussian.entropy(means, log_std[None]).shape == (3,)


def test_mode_is_a_copy_of_the_mean() -> None:
    mean = np.array([[1.0, 2.0]])
    greedy = gaussian.mode(mean, np.zeros(2))
    greedy[0, 0] = 5.0
    assert mean[0, 0] == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gaussian.log_prob([np.nan], [0.0], [0.0]), "mean must be finite"),
        (lambda: gaussian.log_prob([0.0], [np.inf], [0.0]), "log_std must be finite"),
        (lambda: gaussian.log_prob([0.0], [0.0], [np.nan]), "actions must be finite"),
        (lambda: gaussian.entropy(np.zeros((2, 3)), np.zeros(2)), "log_std of shape"),
        (lambda: gaussian.entropy(np.zeros(3), np.zeros((2, 3))), "log_std of shape"),
        (lambda: gaussian.entropy(np.zeros((2, 0)), np.zeros(0)), "A >= 1"),
        (lambda: gaussian.entropy(np.float64(0.0), np.zeros(1)), "A >= 1"),
        (lambda: gaussian.log_prob(np.zeros((2, 3)), np.zeros(3), np.zeros(3)), "actions must"),
        (lambda: gaussian.sample(np.zeros((2, 3)), np.zeros(3), np.zeros((3, 3))), "z must"),
        (
            lambda: gaussian.kl_divergence(np.zeros(3), np.zeros(3), np.zeros(2), np.zeros(2)),
            "mean_q must",
        ),
        (
            lambda: gaussian.kl_divergence(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(2)),
            "log_std_q of shape",
        ),
    ],
)
def test_bad_inputs_are_refused(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def _ppo_batch(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=(6, 2))
    log_std = rng.uniform(-1.0, 0.5, size=2)
    actions = mean + np.exp(log_std) * rng.normal(size=(6, 2))
    return dict(
        mean=mean,
        log_std=log_std,
        actions=actions,
        old_log_probs=gaussian.log_prob(mean, log_std, actions) + rng.uniform(-0.5, 0.5, 6),
        advantages=rng.normal(size=6),
        values=rng.normal(size=6),
        returns=rng.normal(size=6),
    )


SETTINGS = dict(clip_coef=0.2, value_coef=0.5, entropy_coef=0.01)


def _spec_gaussian_loss(batch: dict[str, np.ndarray]) -> tuple[float, ppo.PPOStats]:
    return ppo.ppo_loss_from_log_probs(
        new_log_probs=gaussian.log_prob(batch["mean"], batch["log_std"], batch["actions"]),
        entropies=gaussian.entropy(batch["mean"], batch["log_std"]),
        old_log_probs=batch["old_log_probs"],
        advantages=batch["advantages"],
        values=batch["values"],
        returns=batch["returns"],
        **SETTINGS,
    )


def _runtime_gaussian_loss(t: dict[str, torch.Tensor]) -> torch.Tensor:
    """The runtime's loss terms on a Gaussian policy's log-probabilities and entropies."""
    new = runtime_gaussian.log_prob(t["mean"], t["log_std"], t["actions"])
    bonus = runtime_gaussian.entropy(t["mean"], t["log_std"]).mean()
    policy = runtime_loss.policy_loss(new, t["old_log_probs"], t["advantages"], clip_coef=0.2)
    value = runtime_loss.value_loss(t["values"], t["returns"])
    return policy + 0.5 * value - 0.01 * bonus


def test_the_categorical_loss_is_the_loss_of_its_log_probs_and_entropies() -> None:
    rng = np.random.default_rng(1)
    logits, actions = rng.normal(size=(5, 3)), rng.integers(0, 3, size=5)
    common = dict(
        old_log_probs=np.log(rng.uniform(0.1, 0.6, 5)),
        advantages=rng.normal(size=5),
        values=rng.normal(size=5),
        returns=rng.normal(size=5),
    )
    by_logits = ppo.ppo_loss(logits=logits, actions=actions, **common)
    by_log_probs = ppo.ppo_loss_from_log_probs(
        new_log_probs=distributions.log_prob(logits, actions),
        entropies=distributions.entropy(logits),
        **common,
    )
    assert by_logits == by_log_probs


def test_a_gaussian_policy_plugs_into_the_loss_with_the_runtime_terms() -> None:
    batch = _ppo_batch(2)
    want, stats = _spec_gaussian_loss(batch)
    assert 0.0 < stats.clip_fraction < 1.0  # both branches of the clip are exercised
    tensors = {key: torch.as_tensor(value) for key, value in batch.items()}
    tensors["mean"].requires_grad_(True)
    tensors["log_std"].requires_grad_(True)
    total = _runtime_gaussian_loss(tensors)
    assert float(total.detach()) == pytest.approx(want, rel=1e-12, abs=1e-12)
    grads = torch.autograd.grad(total, [tensors["mean"], tensors["log_std"]])
    for field, grad in zip(("mean", "log_std"), grads, strict=True):
        for index in np.ndindex(batch[field].shape):
            up = {**batch, field: batch[field].copy()}
            down = {**batch, field: batch[field].copy()}
            up[field][index] += FD_STEP
            down[field][index] -= FD_STEP
            numeric = (_spec_gaussian_loss(up)[0] - _spec_gaussian_loss(down)[0]) / (2 * FD_STEP)
            assert float(grad[index]) == pytest.approx(numeric, abs=FD_TOL * (1 + abs(numeric)))


def test_the_ppo_kl_estimate_of_gaussians_estimates_kl_from_the_old_policy() -> None:
    # approx_kl averages k3 over samples of the old policy: its expectation is
    # KL(old || new), which spec.gaussian.kl_divergence takes in that order.
    rng = np.random.default_rng(0)
    n = 200_000
    old_mean, old_log_std = np.zeros((n, 2)), np.array([0.0, -0.5])
    new_mean, new_log_std = np.full((n, 2), 0.3), np.array([0.2, -0.4])
    actions = gaussian.sample(old_mean, old_log_std, rng.normal(size=(n, 2)))
    estimate = ppo.approx_kl(
        gaussian.log_prob(new_mean, new_log_std, actions),
        gaussian.log_prob(old_mean, old_log_std, actions),
    )
    exact = float(gaussian.kl_divergence(old_mean[:1], old_log_std, new_mean[:1], new_log_std)[0])
    reverse = float(gaussian.kl_divergence(new_mean[:1], new_log_std, old_mean[:1], old_log_std)[0])
    assert abs(estimate - exact) < 0.1 * abs(exact - reverse)
