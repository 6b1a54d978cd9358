"""`runtime.gaussian` agrees with `spec.gaussian` in values and gradients, on CPU (and CUDA
where there is one), in float32 and float64; each property catches a real bug; bad arguments
are refused with the argument's name."""

import math

import pytest
import torch
from hypothesis import Phase, settings

from checked_rl.properties.gaussian import (
    entropy_gradient_matches_finite_differences,
    gaussian_entropy_matches_spec,
    gaussian_kl_matches_spec,
    gaussian_log_prob_matches_spec,
    gaussian_mode_matches_spec,
    gaussian_sample_matches_spec,
    kl_gradient_matches_finite_differences,
    log_prob_gradient_matches_finite_differences,
)
from checked_rl.runtime import gaussian

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
DTYPES = [torch.float64, torch.float32]

VALUE_PROPERTIES = {
    "log_prob": (gaussian_log_prob_matches_spec, gaussian.log_prob),
    "entropy": (gaussian_entropy_matches_spec, gaussian.entropy),
    "sample": (gaussian_sample_matches_spec, gaussian.sample),
    "mode": (gaussian_mode_matches_spec, gaussian.mode),
    "kl_divergence": (gaussian_kl_matches_spec, gaussian.kl_divergence),
}
GRADIENT_PROPERTIES = {
    "log_prob": (log_prob_gradient_matches_finite_differences, gaussian.log_prob),
    "entropy": (entropy_gradient_matches_finite_differences, gaussian.entropy),
    "kl_divergence": (kl_gradient_matches_finite_differences, gaussian.kl_divergence),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(VALUE_PROPERTIES))
def test_values_match_spec(name: str, dtype: torch.dtype, device: str) -> None:
    factory, fn = VALUE_PROPERTIES[name]
    factory(fn, dtype=dtype, device=device)()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(GRADIENT_PROPERTIES))
def test_gradients_match_finite_differences(name: str, device: str) -> None:
    factory, fn = GRADIENT_PROPERTIES[name]
    factory(fn, device=device)()


FIND_FAULT = settings(max_examples=200, database=None, phases=[Phase.generate])
"""Settings for running a property on a faulty implementation: long enough to find the fault."""

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def log_prob_without_the_normalising_constant(mean, log_std, actions):
    """Forgets the `0.5 * log(2 pi)` of each dimension (harmless in a ratio, wrong in a
    log-likelihood, an entropy estimate or a KL from samples)."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std).sum(-1)


def log_prob_with_one_constant(mean, log_std, actions):
    """Counts `0.5 * log(2 pi)` once per sample rather than once per dimension."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std).sum(-1) - HALF_LOG_2PI


def entropy_summed_over_the_parameter(mean, log_std):
    """Counts the constant `0.5 + 0.5 * log(2 pi)` once per sample, not once per dimension."""
    return (log_std.sum(-1) + 0.5 + HALF_LOG_2PI).expand(mean.shape[:-1])


def kl_with_swapped_arguments(mean_p, log_std_p, mean_q, log_std_q):
    """`KL(q || p)` for `KL(p || q)`."""
    return gaussian.kl_divergence(mean_q, log_std_q, mean_p, log_std_p)


def sample_scaled_by_log_std(mean, log_std, z):
    """Treats the log-std as the standard deviation."""
    return mean + log_std * z


def mode_that_samples(mean, log_std):
    """Evaluation that draws instead of taking the mean."""
    return mean + torch.exp(log_std) * torch.randn_like(mean)


def log_prob_with_a_frozen_log_std(mean, log_std, actions):
    """Right values, but no gradient to `log_std` (a stray `detach`)."""
    return gaussian.log_prob(mean, log_std.detach(), actions)


def entropy_with_a_frozen_log_std(mean, log_std):
    """Right values, but the entropy bonus no longer moves `log_std`."""
    return gaussian.entropy(mean, log_std.detach())


def kl_with_a_frozen_target(mean_p, log_std_p, mean_q, log_std_q):
    """Right values, but no gradient through `q`."""
    return gaussian.kl_divergence(mean_p, log_std_p, mean_q.detach(), log_std_q.detach())


@pytest.mark.parametrize(
    ("factory", "faulty", "message"),
    [
        (gaussian_log_prob_matches_spec, log_prob_without_the_normalising_constant, "log_prob"),
        (gaussian_log_prob_matches_spec, log_prob_with_one_constant, "log_prob"),
        (gaussian_entropy_matches_spec, entropy_summed_over_the_parameter, "entropy"),
        (gaussian_kl_matches_spec, kl_with_swapped_arguments, "kl_divergence"),
        (gaussian_sample_matches_spec, sample_scaled_by_log_std, "sample"),
        (gaussian_mode_matches_spec, mode_that_samples, "mode"),
        (log_prob_gradient_matches_finite_differences, log_prob_with_a_frozen_log_std, "log_std"),
        (entropy_gradient_matches_finite_differences, entropy_with_a_frozen_log_std, "log_std"),
        (kl_gradient_matches_finite_differences, kl_with_a_frozen_target, "_q"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_each_property_catches_a_real_bug(factory, faulty, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        FIND_FAULT(factory(faulty))()


def test_a_state_independent_log_std_gets_the_gradient_of_the_whole_batch() -> None:
    mean = torch.zeros(5, 2, dtype=torch.float64)
    log_std = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    gaussian.entropy(mean, log_std).sum().backward()
    assert log_std.grad.tolist() == [5.0, 5.0]


def test_sample_actions_is_reproducible_and_has_the_mean_and_std() -> None:
    mean = torch.full((20000, 1), 3.0, dtype=torch.float64)
    log_std = torch.tensor([math.log(0.5)], dtype=torch.float64)
    first = gaussian.sample_actions(mean, log_std, torch.Generator().manual_seed(3))
    second = gaussian.sample_actions(mean, log_std, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    assert first.dtype == torch.float64 and first.shape == (20000, 1)
    # Standard errors 0.5 / sqrt(20000) = 0.0035 and about 0.0025: six of them.
    assert abs(float(first.mean()) - 3.0) < 0.03
    assert abs(float(first.std()) - 0.5) < 0.02


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (
            lambda: gaussian.log_prob(torch.zeros(4, 3), torch.zeros(5, 3), torch.zeros(4, 3)),
            "log_std",
        ),
        (
            lambda: gaussian.log_prob(torch.zeros(4, 3), torch.zeros(3), torch.zeros(4, 2)),
            "actions",
        ),
        (
            lambda: gaussian.log_prob(torch.zeros(4, 3), torch.zeros(2), torch.zeros(4, 3)),
            "log_std",
        ),
        (lambda: gaussian.sample(torch.zeros(4, 3), torch.zeros(3), torch.zeros(3)), "z"),
        (lambda: gaussian.entropy(torch.zeros(2, 3), torch.zeros(2, 2, 3)), "log_std"),
        (lambda: gaussian.mode(torch.zeros(2, 3), torch.zeros(2, 2, 3)), "log_std"),
        (
            lambda: gaussian.kl_divergence(
                torch.zeros(2, 3), torch.zeros(3), torch.zeros(3, 3), torch.zeros(3)
            ),
            "mean_q",
        ),
        (
            lambda: gaussian.kl_divergence(
                torch.zeros(2, 3), torch.zeros(3), torch.zeros(2, 3), torch.zeros(4, 3)
            ),
            "log_std_q",
        ),
    ],
)
def test_bad_shapes_are_refused_naming_the_argument(call, name: str) -> None:
    with pytest.raises((TypeError, ValueError), match=rf"(parameter '{name}'|^{name} )"):
        call()
