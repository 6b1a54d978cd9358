"""Properties of diagonal Gaussian policy math: batched implementations agree with
`spec.gaussian` (values, and gradients in `mean` and `log_std` by finite differences), and the
laws of a Gaussian hold (the KL divergence is never negative and zero between equal
distributions; the log-probability of a sampled action is that of its standard normals).

What the properties assume of their inputs (`gaussian_batches`): means `[B, A]` or `[T, N, A]`
(`A <= 4`) with entries in `[-MEAN_BOUND, MEAN_BOUND]`; log-stds in `LOG_STD_RANGE`, of one of
the three shapes a policy head produces: `[A]` (state-independent, shared by the batch), `[1,
A]`-like (ones on the batch axes) or the mean's own shape; actions `mean + exp(log_std) * z`
for normals `z` in `[-Z_BOUND, Z_BOUND]`; a second distribution for the KL drawn the same way.
The implementation under test takes tensors with `runtime.gaussian`'s signatures; any order of
operations of the spec's formulas passes.

Tolerances (`properties.tolerances`): float results are compared as
`|got - want| <= rtol * (|want| + scale)`, `rtol` the named tolerance of the dtype and `scale`
`GAUSSIAN_ROUNDING_FACTOR` times the sizes of the terms summed, including the amplification
of the rounding of `x - mu` by `exp(-log_std)`, plus the dtype's smallest normal number over
`rtol` (subnormal results have fewer digits); inputs are rounded to the dtype first. `mode`
must return the mean exactly. Gradients are float64 autograd against central differences of
the spec with step `FD_STEP`, within `FD_TOL * (1 + |derivative|) + FD_ROUNDING * |objective|`;
their batches are smaller (`A <= 3`, at most 6 samples) and log-stds lie in `GRAD_LOG_STD_RANGE`.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checked_rl.properties.tolerances import (
    FD_ROUNDING,
    FD_STEP,
    FD_TOL,
    GAUSSIAN_ROUNDING_FACTOR,
    LAW_TOL,
    assert_close,
    round_to_dtype,
    rtol_for,
)
from checked_rl.spec import gaussian as spec_gaussian

__all__ = [
    "GRAD_LOG_STD_RANGE",
    "LOG_STD_RANGE",
    "MEAN_BOUND",
    "Z_BOUND",
    "GaussianBatch",
    "entropy_gradient_matches_finite_differences",
    "gaussian_batches",
    "gaussian_entropy_matches_spec",
    "gaussian_kl_matches_spec",
    "gaussian_log_prob_matches_spec",
    "gaussian_mode_matches_spec",
    "gaussian_sample_matches_spec",
    "kl_gradient_matches_finite_differences",
    "kl_is_nonnegative_and_zero_between_equals",
    "log_prob_gradient_matches_finite_differences",
    "log_prob_of_a_sample_is_that_of_its_normals",
]

MEAN_BOUND = 10.0
"""Means lie in `[-MEAN_BOUND, MEAN_BOUND]` (actions of classic-control boxes are within 2)."""

LOG_STD_RANGE = (-5.0, 2.0)
"""Log-stds of the value properties: `sigma` from `0.0067` to `7.4` (CleanRL starts at 0)."""

GRAD_LOG_STD_RANGE = (-3.0, 1.0)
"""Log-stds of the gradient properties, where `FD_STEP` resolves the curvature in `sigma`."""

Z_BOUND = 4.0
"""Standard normals lie in `[-Z_BOUND, Z_BOUND]` (all but `6e-5` of a normal's mass)."""


class GaussianBatch(NamedTuple):
    """Two diagonal Gaussians `p` (mean, log_std) and `q` over one batch, an action of `p`
    (`actions = mean + exp(log_std) * z`) and its normals `z`: all float64 arrays."""

    mean: np.ndarray
    log_std: np.ndarray
    actions: np.ndarray
    z: np.ndarray
    mean_q: np.ndarray
    log_std_q: np.ndarray


def _floats(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def gaussian_batches(
    draw: st.DrawFn,
    *,
    max_samples: int = 12,
    max_dims: int = 4,
    log_std_range: tuple[float, float] = LOG_STD_RANGE,
) -> GaussianBatch:
    """A `GaussianBatch` over `[B, A]` or `[T, N, A]` (`B` or `T * N <= max_samples`,
    `A <= max_dims`), each log-std `[A]`, ones on the batch axes, or the mean's shape."""
    n_dims = draw(st.integers(1, max_dims))
    if draw(st.booleans()):
        batch: tuple[int, ...] = (draw(st.integers(1, max_samples)),)
    else:
        n_steps = draw(st.integers(1, max_samples))
        batch = (n_steps, draw(st.integers(1, max(1, max_samples // n_steps))))
    shape = (*batch, n_dims)

    def log_std() -> np.ndarray:
        kind = draw(st.sampled_from(["shared", "ones", "full"]))
        std_shape = {"shared": (n_dims,), "ones": (1,) * len(batch) + (n_dims,)}.get(kind, shape)
        return draw(hnp.arrays(np.float64, std_shape, elements=_floats(*log_std_range)))

    mean = draw(hnp.arrays(np.float64, shape, elements=_floats(-MEAN_BOUND, MEAN_BOUND)))
    scale = log_std()
    z = draw(hnp.arrays(np.float64, shape, elements=_floats(-Z_BOUND, Z_BOUND)))
    mean_q = draw(hnp.arrays(np.float64, shape, elements=_floats(-MEAN_BOUND, MEAN_BOUND)))
    return GaussianBatch(mean, scale, mean + np.exp(scale) * z, z, mean_q, log_std())


def _rounded(batch: GaussianBatch, dtype: torch.dtype) -> GaussianBatch:
    return GaussianBatch(*(round_to_dtype(array, dtype) for array in batch))


def _tensor(array: np.ndarray, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.as_tensor(array, dtype=dtype, device=device)


def _distance_scale(x: np.ndarray, mean: np.ndarray, log_std: np.ndarray) -> np.ndarray:
    """`[..., A]`: the size of `z^2 / 2` and of its rounding, `z = (x - mean) * exp(-log_std)`."""
    z = (x - mean) * np.exp(-log_std)
    return z * z + 2.0 * np.abs(z) * (np.abs(x) + np.abs(mean)) * np.exp(-log_std)


def _scale(name: str, b: GaussianBatch) -> np.ndarray:
    """The size of the terms of `spec.gaussian.<name>` and of their rounding, per result."""
    s = np.broadcast_to(b.log_std, b.mean.shape)
    if name == "log_prob":
        terms = 1.0 + np.abs(s) + _distance_scale(b.actions, b.mean, s)
    elif name == "entropy":
        terms = 1.0 + np.abs(s)
    elif name == "sample":
        return GAUSSIAN_ROUNDING_FACTOR * (np.abs(b.mean) + np.exp(s) * np.abs(b.z))
    else:
        s_q = np.broadcast_to(b.log_std_q, b.mean.shape)
        d = s - s_q
        terms = (
            np.exp(2.0 * d)
            + 1.0
            + 2.0 * np.abs(d)
            + np.abs(np.expm1(2.0 * d)) * (np.abs(s) + np.abs(s_q))
            + _distance_scale(b.mean, b.mean_q, s_q)
        )
    return GAUSSIAN_ROUNDING_FACTOR * terms.sum(axis=-1)


def _matches_spec(
    name: str,
    fn: Callable[..., torch.Tensor],
    arguments: Callable[[GaussianBatch], tuple[np.ndarray, ...]],
    dtype: torch.dtype,
    device: str,
) -> Callable[[], None]:
    """The property "batched `fn(*arguments(batch))` agrees with `spec.gaussian.<name>`"."""
    reference = getattr(spec_gaussian, name)

    @given(batch=gaussian_batches())
    def prop(batch: GaussianBatch) -> None:
        batch = _rounded(batch, dtype)
        args = arguments(batch)
        got = fn(*(_tensor(a, dtype, device) for a in args)).detach().cpu().double().numpy()
        want = reference(*args)
        rtol = rtol_for(dtype)
        # Results below the dtype's smallest normal number are subnormal, with fewer digits.
        scale = _scale(name, batch) + torch.finfo(dtype).tiny / rtol
        assert_close(got, want, scale=scale, rtol=rtol, what=name)

    return prop


def gaussian_log_prob_matches_spec(
    log_prob: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `log_prob(mean, log_std, actions)` agrees with `spec.gaussian.log_prob`.

    Assumes `gaussian_batches` (every log-std shape, actions within `Z_BOUND` deviations);
    accepts any order of operations of the spec's sum.
    """
    return _matches_spec(
        "log_prob", log_prob, lambda b: (b.mean, b.log_std, b.actions), dtype, device
    )


def gaussian_entropy_matches_spec(
    entropy: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `entropy(mean, log_std)` agrees with `spec.gaussian.entropy`: one entropy per
    sample of the mean's batch, each dimension counted once, whatever the log-std's shape.

    Assumes `gaussian_batches`; accepts any implementation of the spec's sum.
    """
    return _matches_spec("entropy", entropy, lambda b: (b.mean, b.log_std), dtype, device)


def gaussian_sample_matches_spec(
    sample: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `sample(mean, log_std, z)` agrees with `spec.gaussian.sample`, `mu + exp(s) z`.

    Assumes `gaussian_batches` (normals within `Z_BOUND`); accepts any implementation of it.
    """
    return _matches_spec("sample", sample, lambda b: (b.mean, b.log_std, b.z), dtype, device)


def gaussian_kl_matches_spec(
    kl_divergence: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `kl_divergence(mean_p, log_std_p, mean_q, log_std_q)` agrees with
    `spec.gaussian.kl_divergence`, `KL(p || q)` in that order.

    Assumes `gaussian_batches` (the two log-stds of independent shapes, so their difference
    reaches `7` and `exp(2 d)` about `1e6`); accepts any order of operations whose rounding is
    within the scale of the terms, `expm1` or not.
    """

    def arguments(b: GaussianBatch) -> tuple[np.ndarray, ...]:
        return b.mean, b.log_std, b.mean_q, b.log_std_q

    return _matches_spec("kl_divergence", kl_divergence, arguments, dtype, device)


def gaussian_mode_matches_spec(
    mode: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `mode(mean, log_std)` is exactly the mean, the spec's greedy action.

    Assumes `gaussian_batches`; accepts only the mean itself, of the mean's shape.
    """

    @given(batch=gaussian_batches())
    def prop(batch: GaussianBatch) -> None:
        batch = _rounded(batch, dtype)
        got = mode(_tensor(batch.mean, dtype, device), _tensor(batch.log_std, dtype, device))
        want = spec_gaussian.mode(batch.mean, batch.log_std)
        np.testing.assert_array_equal(got.detach().cpu().double().numpy(), want, "mode")

    return prop


def _gradient_matches(
    name: str,
    fn: Callable[..., torch.Tensor],
    fields: tuple[str, ...],
    wrt: tuple[str, ...],
    device: str,
) -> Callable[[], None]:
    """The property "the autograd gradient of `sum_i w_i fn(*fields)_i` in each of `wrt` equals
    central differences of the same weighted sum of `spec.gaussian.<name>`"."""
    reference = getattr(spec_gaussian, name)

    @given(
        batch=gaussian_batches(max_samples=6, max_dims=3, log_std_range=GRAD_LOG_STD_RANGE),
        data=st.data(),
    )
    def prop(batch: GaussianBatch, data: st.DataObject) -> None:
        values = {f: getattr(batch, f) for f in fields}
        batch_shape = batch.mean.shape[:-1]
        weights = data.draw(hnp.arrays(np.float64, batch_shape, elements=_floats(-2.0, 2.0)))
        tensors = {f: _tensor(v, torch.float64, device) for f, v in values.items()}
        for field in wrt:
            tensors[field].requires_grad_(True)
        objective = (fn(*tensors.values()) * _tensor(weights, torch.float64, device)).sum()
        inputs = [tensors[field] for field in wrt]
        grads = (
            torch.autograd.grad(objective, inputs, allow_unused=True)
            if objective.requires_grad
            else (None,) * len(inputs)  # no path to any input: every derivative is 0
        )
        for field, grad in zip(wrt, grads, strict=True):
            analytic = np.zeros(values[field].shape) if grad is None else grad.cpu().numpy()
            for index in np.ndindex(values[field].shape):
                sides = []
                for step in (FD_STEP, -FD_STEP):
                    moved = dict(values)
                    moved[field] = values[field].copy()
                    moved[field][index] += step
                    sides.append(float(np.sum(weights * reference(*moved.values()))))
                numeric = (sides[0] - sides[1]) / (2 * FD_STEP)
                size = max(abs(sides[0]), abs(sides[1]))
                bound = FD_TOL * (1.0 + abs(numeric)) + FD_ROUNDING * size
                assert abs(analytic[index] - numeric) <= bound, (
                    f"d {name} / d {field}{list(index)}: autograd {analytic[index]!r}, "
                    f"finite difference {numeric!r}"
                )

    return prop


def log_prob_gradient_matches_finite_differences(
    log_prob: Callable[..., torch.Tensor], *, device: str = "cpu"
) -> Callable[[], None]:
    """The float64 gradient of `log_prob(mean, log_std, actions)` (weighted over the batch) in
    `mean` and `log_std` equals central finite differences of the spec; with a `log_std [A]`
    that is the sum over the batch of each sample's derivative.

    Assumes `gaussian_batches` of at most 6 samples, `A <= 3`, log-stds in
    `GRAD_LOG_STD_RANGE`; accepts any differentiable implementation.
    """
    fields = ("mean", "log_std", "actions")
    return _gradient_matches("log_prob", log_prob, fields, ("mean", "log_std"), device)


def entropy_gradient_matches_finite_differences(
    entropy: Callable[..., torch.Tensor], *, device: str = "cpu"
) -> Callable[[], None]:
    """The float64 gradient of `entropy(mean, log_std)` (weighted over the batch) in `mean`
    (zero: an implementation may leave it unused) and `log_std` equals central differences of
    the spec.

    Assumes `gaussian_batches` as `log_prob_gradient_matches_finite_differences`; accepts any
    differentiable implementation.
    """
    fields = ("mean", "log_std")
    return _gradient_matches("entropy", entropy, fields, fields, device)


def kl_gradient_matches_finite_differences(
    kl_divergence: Callable[..., torch.Tensor], *, device: str = "cpu"
) -> Callable[[], None]:
    """The float64 gradient of `kl_divergence(mean_p, log_std_p, mean_q, log_std_q)` (weighted
    over the batch) in all four parameters equals central differences of the spec.

    Assumes `gaussian_batches` as `log_prob_gradient_matches_finite_differences`; accepts any
    differentiable implementation.
    """
    fields = ("mean", "log_std", "mean_q", "log_std_q")
    return _gradient_matches("kl_divergence", kl_divergence, fields, fields, device)


def kl_is_nonnegative_and_zero_between_equals(
    kl_divergence: Callable[..., np.ndarray],
) -> Callable[[], None]:
    """`KL(p || q) >= 0`, and `KL(p || p) = 0` exactly (Gibbs' inequality).

    Assumes `gaussian_batches`; accepts any NumPy implementation with the spec's signature
    whose terms are each never negative (as the spec's `expm1` form).
    """

    @given(batch=gaussian_batches())
    def prop(batch: GaussianBatch) -> None:
        kl = kl_divergence(batch.mean, batch.log_std, batch.mean_q, batch.log_std_q)
        assert np.all(kl >= 0.0), f"negative KL {kl}"
        same = kl_divergence(batch.mean, batch.log_std, batch.mean, batch.log_std)
        assert np.all(same == 0.0), f"KL(p || p) = {same}"

    return prop


def log_prob_of_a_sample_is_that_of_its_normals(
    log_prob: Callable[..., np.ndarray], sample: Callable[..., np.ndarray]
) -> Callable[[], None]:
    """`log_prob(mu, s, sample(mu, s, z)) = sum_a (-z_a^2 / 2 - s_a - 0.5 log(2 pi))`: the
    change of variables `x = mu + exp(s) z`, to `LAW_TOL` times the sizes of the terms.

    Assumes `gaussian_batches`; accepts any NumPy pair with the spec's signatures.
    """

    @given(batch=gaussian_batches())
    def prop(batch: GaussianBatch) -> None:
        x = sample(batch.mean, batch.log_std, batch.z)
        got = log_prob(batch.mean, batch.log_std, x)
        s = np.broadcast_to(batch.log_std, batch.mean.shape)
        want = np.sum(-0.5 * batch.z**2 - s - spec_gaussian.HALF_LOG_2PI, axis=-1)
        scale = _scale("log_prob", batch._replace(actions=x))
        assert_close(got, want, scale=scale, rtol=LAW_TOL, what="log_prob of a sample")

    return prop
