"""The laws that any GAE must satisfy, and those of lambda-returns and advantage normalisation.

The implementations under test are *trace* ones, with `spec.returns`' interface: keyword
arguments `rewards, values, next_values, terminated, truncated` as 1-D NumPy arrays over one
environment's time axis, `gamma`, `lam`. `properties.returns.on_trace` turns a batched
implementation into a trace one, so the laws run on both; `properties.returns` re-exports every
law, under the names the guide imports them by.

Assumptions. Like the `*_matches_spec` properties, the laws draw *consistent* traces by default
(`next_values[t] == values[t + 1]` wherever step `t` did not end an episode, as environments
produce them), so an implementation that reads `V(s_{t+1})` from `values[t + 1]` inside an
episode is accepted; `consistent=False` draws general traces (`next_values[t]` free at every
step) and accepts only implementations that read the successor's value from `next_values`.
`gae_lam_one_is_monte_carlo_minus_values` holds only on consistent traces and always draws
them; `normalized_advantages_are_standardized` takes any batch.

Tolerance: the two sides of each law are compared with `properties.tolerances.assert_close` to
`FLOAT64_RTOL` of the trace's `returns_scale`, which bounds every partial sum when
`gamma, lam <= 1`.
"""

from collections.abc import Callable

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from checked_rl.properties.strategies.rollouts import RolloutArrays, discounts, rollouts
from checked_rl.properties.tolerances import (
    FLOAT64_RTOL,
    NORMALIZE_TOL,
    assert_close,
    returns_scale,
)
from checked_rl.spec import returns as spec_returns

__all__ = [
    "gae_is_discounted_sum_of_residuals",
    "gae_lam_one_is_monte_carlo_minus_values",
    "gae_lam_zero_is_td_residual",
    "lambda_returns_are_advantages_plus_values",
    "normalized_advantages_are_standardized",
    "truncation_bootstraps_termination_does_not",
]


def _traces(consistent: bool) -> st.SearchStrategy[RolloutArrays]:
    """Single-environment rollouts, as 1-D arrays."""
    return rollouts(max_envs=1, consistent=consistent).map(
        lambda a: RolloutArrays(*(x[:, 0] for x in a))
    )


def _assert_trace_close(
    got: np.ndarray, want: np.ndarray, arrays: RolloutArrays, what: str, *, extra: float = 0.0
) -> None:
    """`got` equals `want` to `FLOAT64_RTOL` of the trace's scale (plus `extra`)."""
    scale = float(returns_scale(arrays)) + extra
    assert_close(got, want, scale=scale, rtol=FLOAT64_RTOL, what=what)


def _residuals(
    td_residuals: Callable[..., np.ndarray], arrays: RolloutArrays, gamma: float
) -> np.ndarray:
    """`td_residuals` on the trace (it takes every field but `truncated`)."""
    return td_residuals(
        rewards=arrays.rewards,
        values=arrays.values,
        next_values=arrays.next_values,
        terminated=arrays.terminated,
        gamma=gamma,
    )


def gae_lam_one_is_monte_carlo_minus_values(
    gae: Callable[..., np.ndarray], discounted_returns: Callable[..., np.ndarray]
) -> Callable[[], None]:
    """On a consistent trace, `gae(lam=1) == discounted_returns - values` (Schulman et al. 2015,
    eq. 18).

    Assumes consistent traces, always (the law fails on others), compared to `FLOAT64_RTOL` of
    the trace's scale; accepts any trace `gae` and `discounted_returns` that are right on
    consistent traces, the TD(lambda) recursion's `G - V` included.
    """

    @given(arrays=_traces(consistent=True), gamma=discounts())
    def prop(arrays: RolloutArrays, gamma: float) -> None:
        advantages = gae(**arrays._asdict(), gamma=gamma, lam=1.0)
        returns = discounted_returns(
            rewards=arrays.rewards,
            next_values=arrays.next_values,
            terminated=arrays.terminated,
            truncated=arrays.truncated,
            gamma=gamma,
        )
        _assert_trace_close(
            advantages, returns - arrays.values, arrays, "gae(lam=1) vs returns - values"
        )

    return prop


def gae_lam_zero_is_td_residual(
    gae: Callable[..., np.ndarray],
    td_residuals: Callable[..., np.ndarray],
    *,
    consistent: bool = True,
) -> Callable[[], None]:
    """`gae(lam=0) == td_residuals` (Schulman et al. 2015, eq. 17).

    Assumes consistent traces by default (see the module); `consistent=False` draws general
    ones. Accepts, by default, any pair right on real rollouts (one reading `values[t + 1]`
    inside an episode included); with `consistent=False`, only pairs that read `next_values` at
    every step.
    """

    @given(arrays=_traces(consistent), gamma=discounts())
    def prop(arrays: RolloutArrays, gamma: float) -> None:
        advantages = gae(**arrays._asdict(), gamma=gamma, lam=0.0)
        residuals = _residuals(td_residuals, arrays, gamma)
        _assert_trace_close(advantages, residuals, arrays, "gae(lam=0) vs td_residuals")

    return prop


def gae_is_discounted_sum_of_residuals(
    gae: Callable[..., np.ndarray],
    td_residuals: Callable[..., np.ndarray],
    *,
    consistent: bool = True,
) -> Callable[[], None]:
    """`A_t = sum_{k=t}^{e(t)} (gamma lam)^(k-t) delta_k`, `e(t)` the first done step `>= t`
    (or `T - 1`): the closed form of Schulman et al. 2015, eq. 16.

    Assumes consistent traces by default (see the module); `consistent=False` draws general
    ones. Accepts as `gae_lam_zero_is_td_residual` does: any recursion, scan or loop right on
    real rollouts by default.
    """

    @given(arrays=_traces(consistent), gamma=discounts(), lam=discounts())
    def prop(arrays: RolloutArrays, gamma: float, lam: float) -> None:
        advantages = gae(**arrays._asdict(), gamma=gamma, lam=lam)
        delta = _residuals(td_residuals, arrays, gamma)
        done = arrays.terminated | arrays.truncated
        n_steps = delta.shape[0]
        closed_form = np.zeros(n_steps)
        for t in range(n_steps):
            for k in range(t, n_steps):
                closed_form[t] += (gamma * lam) ** (k - t) * delta[k]
                if done[k]:
                    break
        _assert_trace_close(
            advantages, closed_form, arrays, "gae vs the sum of discounted residuals"
        )

    return prop


def truncation_bootstraps_termination_does_not(
    gae: Callable[..., np.ndarray], *, consistent: bool = True
) -> Callable[[], None]:
    """Changing `next_values` at a terminated step changes nothing; at a truncated, not
    terminated step `t` it moves `A_t` by exactly `gamma` times the change and leaves every
    later step alone.

    Assumes consistent traces by default (see the module): the changed `next_values` are those
    of steps that ended an episode, so the changed traces stay consistent. `consistent=False`
    for general ones. Accepts any `gae` that multiplies the terminated bootstrap by zero (or drops
    it) and adds `gamma * next_values[t]` at a truncation; the terminated case and the later
    steps are compared exactly.
    """

    @given(
        arrays=_traces(consistent),
        gamma=discounts(),
        lam=discounts(),
        shift=st.floats(-100.0, 100.0),
    )
    def prop(arrays: RolloutArrays, gamma: float, lam: float, shift: float) -> None:
        base = gae(**arrays._asdict(), gamma=gamma, lam=lam)
        shifted_terminal = arrays.next_values + np.where(arrays.terminated, shift, 0.0)
        moved = gae(**arrays._replace(next_values=shifted_terminal)._asdict(), gamma=gamma, lam=lam)
        np.testing.assert_array_equal(moved, base, "a terminated step bootstrapped")
        cut = np.flatnonzero(arrays.truncated & ~arrays.terminated)
        assume(cut.size > 0)
        t = int(cut[-1])
        next_values = arrays.next_values.copy()
        next_values[t] += shift
        moved = gae(**arrays._replace(next_values=next_values)._asdict(), gamma=gamma, lam=lam)
        np.testing.assert_array_equal(moved[t + 1 :], base[t + 1 :], "a later step moved")
        _assert_trace_close(
            np.array([moved[t] - base[t]]),
            np.array([gamma * (next_values[t] - arrays.next_values[t])]),
            arrays,
            f"the bootstrap of truncated step {t}",
            extra=abs(shift),
        )

    return prop


def lambda_returns_are_advantages_plus_values(
    lambda_returns: Callable[..., np.ndarray],
    gae: Callable[..., np.ndarray],
    *,
    consistent: bool = True,
) -> Callable[[], None]:
    """`lambda_returns == gae + values` (the value targets).

    Assumes consistent traces by default (see the module); `consistent=False` draws general
    ones. Accepts any pair right on real rollouts by default, the TD(lambda) recursion for
    `lambda_returns` included.
    """

    @given(arrays=_traces(consistent), gamma=discounts(), lam=discounts())
    def prop(arrays: RolloutArrays, gamma: float, lam: float) -> None:
        targets = lambda_returns(**arrays._asdict(), gamma=gamma, lam=lam)
        advantages = gae(**arrays._asdict(), gamma=gamma, lam=lam)
        _assert_trace_close(
            targets, advantages + arrays.values, arrays, "lambda_returns vs gae + values"
        )

    return prop


def normalized_advantages_are_standardized(
    normalize_advantages: Callable[[np.ndarray], np.ndarray],
) -> Callable[[], None]:
    """Normalised advantages have mean 0 and standard deviation `std / (std + eps)`, i.e. 1 up
    to the epsilon, whenever the batch is not constant; a constant batch maps to zeros (up to
    the rounding of its mean).

    Assumes nothing of the batch (any finite advantages, any shape); accepts any z-score
    `(A - mean) / (std + eps)` with the population standard deviation and `eps` no larger than
    the spec's `NORMALIZE_EPS`.
    """

    @given(arrays=rollouts())
    def prop(arrays: RolloutArrays) -> None:
        advantages = arrays.rewards
        z = normalize_advantages(advantages)
        std = advantages.std()
        if np.all(advantages == advantages.flat[0]):
            # A constant batch maps to zeros, up to the rounding of its mean: |a - mean| is at
            # most size * eps_64 * max|a|, which the denominator's epsilon divides.
            rounding = advantages.size * np.finfo(np.float64).eps * np.max(np.abs(advantages))
            bound = rounding / spec_returns.NORMALIZE_EPS
            assert np.max(np.abs(z)) <= bound, f"constant batch maps to {z!r}, not zeros"
            return
        # Cancellation in a - mean loses about eps * max|a| / std of relative precision; below
        # about 1e-154 the squares underflow and std is 0 for a batch that is not constant.
        assume(std > 1e-6 * np.max(np.abs(advantages)))
        assert abs(z.mean()) <= NORMALIZE_TOL, f"mean {z.mean()!r} is not 0"
        expected_std = std / (std + spec_returns.NORMALIZE_EPS)
        assert abs(z.std() - expected_std) <= NORMALIZE_TOL, (
            f"std {z.std()!r}, expected {expected_std!r}"
        )

    return prop
