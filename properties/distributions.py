"""Properties of categorical policy math: batched implementations agree with
`spec.distributions`, and the laws of a categorical distribution hold (normalisation, entropy
bounds, the inverse-CDF sampler drawing each action with its probability).

Batched implementations take logits `[B, A]` as tensors (`runtime.distributions`' interface).
Float results are compared as `|got - want| <= rtol * (|want| + scale)`, `rtol` the named
tolerance of the dtype (`properties.tolerances.rtol_for`) and `scale` one plus
the largest finite `|logit|` of the row (rounding in `z - max z` scales with it); `-inf` entries
(impossible actions) must match exactly. Integer results (greedy and sampled actions) must be
equal; sampling is compared only where `u` is not within `SAMPLE_MARGIN` of a boundary of the
inverse CDF, where the two sides' different summation orders may round differently.
"""

from collections.abc import Callable

import numpy as np
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checked_rl.properties.strategies.rollouts import logits
from checked_rl.properties.tolerances import (
    LAW_TOL,
    SAMPLE_MARGIN,
    assert_close,
    round_to_dtype,
    rtol_for,
)
from checked_rl.spec import distributions as spec_distributions

__all__ = [
    "SAMPLE_GRID",
    "SAMPLE_MARGIN",
    "entropy_is_bounded",
    "entropy_matches_spec",
    "greedy_matches_spec",
    "log_prob_matches_spec",
    "log_softmax_is_normalized",
    "log_softmax_matches_spec",
    "sample_draws_each_action_with_its_probability",
    "sample_matches_spec",
]

SAMPLE_GRID = 200
"""Evenly spaced `u` per distribution in the law of sampling frequencies."""


def _row_scale(z: np.ndarray) -> np.ndarray:
    """`[B, 1]`: one plus the largest finite `|logit|` of each row."""
    finite = np.where(np.isfinite(z), np.abs(z), 0.0)
    return 1.0 + finite.max(axis=-1, keepdims=True)


def _entropy_scale(z: np.ndarray) -> np.ndarray:
    """`[B]`: each term p log p is off by about eps * |log p| <= eps * 2 * `_row_scale`."""
    return 2.0 * _row_scale(z)[:, 0] * z.shape[1]


def _logits_fn_matches_spec(
    name: str,
    fn: Callable[[torch.Tensor], torch.Tensor],
    scale: Callable[[np.ndarray], np.ndarray],
    dtype: torch.dtype,
    device: str,
) -> Callable[[], None]:
    """The property "batched `fn(logits)` agrees with `spec.distributions.<name>` to within
    `rtol * (|want| + scale(logits))`"."""
    reference = getattr(spec_distributions, name)

    @given(z=logits(impossible=True))
    def prop(z: np.ndarray) -> None:
        z = round_to_dtype(z, dtype)
        got = fn(torch.as_tensor(z, dtype=dtype, device=device)).cpu().double().numpy()
        assert_close(got, reference(z), scale=scale(z), rtol=rtol_for(dtype), what=name)

    return prop


def log_softmax_matches_spec(
    log_softmax: Callable[[torch.Tensor], torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `log_softmax` agrees with `spec.distributions.log_softmax`, `-inf` included."""
    return _logits_fn_matches_spec("log_softmax", log_softmax, _row_scale, dtype, device)


def log_prob_matches_spec(
    log_prob: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `log_prob` agrees with `spec.distributions.log_prob` for any valid actions."""

    @given(z=logits(impossible=True), data=st.data())
    def prop(z: np.ndarray, data: st.DataObject) -> None:
        z = round_to_dtype(z, dtype)
        actions = data.draw(
            hnp.arrays(np.int64, z.shape[:1], elements=st.integers(0, z.shape[1] - 1))
        )
        got = log_prob(
            torch.as_tensor(z, dtype=dtype, device=device), torch.as_tensor(actions, device=device)
        )
        want = spec_distributions.log_prob(z, actions)
        assert_close(
            got.cpu().double().numpy(),
            want,
            scale=_row_scale(z)[:, 0],
            rtol=rtol_for(dtype),
            what="log_prob",
        )

    return prop


def entropy_matches_spec(
    entropy: Callable[[torch.Tensor], torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `entropy` agrees with `spec.distributions.entropy`, impossible actions included."""
    return _logits_fn_matches_spec("entropy", entropy, _entropy_scale, dtype, device)


def greedy_matches_spec(
    greedy: Callable[[torch.Tensor], torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `greedy` returns exactly the spec's actions (smallest index on ties)."""

    @given(z=logits(impossible=True))
    def prop(z: np.ndarray) -> None:
        z = round_to_dtype(z, dtype)
        got = greedy(torch.as_tensor(z, dtype=dtype, device=device)).cpu().numpy()
        np.testing.assert_array_equal(got, spec_distributions.greedy(z))

    return prop


def _boundary_distance(z: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per row: the distance of `u * W` from the nearest running sum `W_a`, relative to `W`."""
    weights = np.exp(z - z.max(axis=-1, keepdims=True))
    running = np.cumsum(weights, axis=-1)
    total = running[:, -1:]
    return np.min(np.abs(u[:, None] * total - running), axis=-1) / total[:, 0]


def sample_matches_spec(
    sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `sample(logits, u)` draws the spec's actions, away from CDF boundaries."""

    @given(z=logits(impossible=True), data=st.data())
    def prop(z: np.ndarray, data: st.DataObject) -> None:
        z = round_to_dtype(z, dtype)
        u = data.draw(
            hnp.arrays(np.float64, z.shape[:1], elements=st.floats(0.0, 1.0, exclude_max=True)).map(
                lambda a: round_to_dtype(a, dtype)
            )
        )
        assume(np.all(u < 1.0))
        assume(np.all(_boundary_distance(z, u) > SAMPLE_MARGIN[dtype]))
        got = sample(
            torch.as_tensor(z, dtype=dtype, device=device),
            torch.as_tensor(u, dtype=dtype, device=device),
        )
        np.testing.assert_array_equal(got.cpu().numpy(), spec_distributions.sample(z, u))

    return prop


def sample_draws_each_action_with_its_probability(
    sample: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Callable[[], None]:
    """On the grid `u_k = (k + 1/2) / M`, a sampler over NumPy arrays draws action `a` for
    `M pi(a)` of the points, give or take one: the inverse CDF gives every action an interval
    of length `pi(a)`. Impossible actions are never drawn."""

    @given(z=logits(max_batch=1, impossible=True))
    def prop(z: np.ndarray) -> None:
        grid = (np.arange(SAMPLE_GRID) + 0.5) / SAMPLE_GRID
        drawn = sample(np.repeat(z, SAMPLE_GRID, axis=0), grid)
        counts = np.bincount(drawn, minlength=z.shape[1])
        expected = SAMPLE_GRID * spec_distributions.softmax(z)[0]
        assert np.all(np.abs(counts - expected) <= 1.0 + 1e-9), (
            f"counts {counts} for probabilities {expected / SAMPLE_GRID}"
        )
        assert np.all(counts[np.isneginf(z[0])] == 0), "an impossible action was drawn"

    return prop


def log_softmax_is_normalized(
    log_softmax: Callable[[np.ndarray], np.ndarray],
) -> Callable[[], None]:
    """`sum_a exp(log_softmax(z)_a) = 1`, `log_softmax` is `z` minus one constant per row, and
    impossible actions get `-inf` (implementations over NumPy arrays, float64)."""

    @given(z=logits(impossible=True))
    def prop(z: np.ndarray) -> None:
        logp = log_softmax(z)
        np.testing.assert_array_equal(np.isneginf(logp), np.isneginf(z))
        assert np.all(np.abs(np.exp(logp).sum(axis=-1) - 1.0) <= LAW_TOL * z.shape[-1])
        finite = np.isfinite(z)
        shift = np.where(finite, np.where(finite, z, 0.0) - np.where(finite, logp, 0.0), np.nan)
        spread = np.nanmax(shift, axis=-1) - np.nanmin(shift, axis=-1)
        assert np.all(spread <= LAW_TOL * _row_scale(z)[:, 0]), f"z - log_softmax(z): {shift}"

    return prop


def entropy_is_bounded(entropy: Callable[[np.ndarray], np.ndarray]) -> Callable[[], None]:
    """`0 <= H(pi) <= log(number of possible actions)`, with equality at the uniform policy."""

    @given(z=logits(impossible=True))
    def prop(z: np.ndarray) -> None:
        h = entropy(z)
        possible = np.isfinite(z).sum(axis=-1)
        assert np.all(h >= -LAW_TOL), f"negative entropy {h}"
        assert np.all(h <= np.log(possible) + LAW_TOL), f"entropy {h} above log {possible}"
        uniform = np.where(np.isfinite(z), 0.0, -np.inf)
        np.testing.assert_allclose(entropy(uniform), np.log(possible), rtol=0, atol=LAW_TOL)

    return prop
