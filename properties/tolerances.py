"""Every tolerance of the properties, with the helpers that compare within them.

One module, so that each number is written once and says why it is what it is. The conventions:

- An implementation is compared with the spec as `|got - want| <= rtol * (|want| + scale)`
  (`assert_close`), where `scale` bounds the sizes of the terms that were summed: rounding errors
  scale with the inputs, not with a result that may have cancelled. `rtol` is the named
  tolerance of the dtype (`rtol_for`).
- Float32 checks round their inputs to float32 first (`round_to_dtype`, `round_fields`) and run
  the spec in float64 on the rounded numbers, so that only the arithmetic is measured.
- Laws of the spec (identities and bounds that hold exactly in real arithmetic) are checked in
  float64 to `LAW_TOL`, or to their own constant where a solve or an episode amplifies errors.
- Where a result is a step function of a float (a clip, a sampled action, a termination flag), it
  is compared exactly, and only away from the step by a named margin: rounding may legitimately
  decide either way next to it.
"""

from collections.abc import Sequence
from typing import NamedTuple, TypeVar

import numpy as np
import torch

from checked_rl.properties.strategies.rollouts import RolloutArrays

__all__ = [
    "CARTPOLE_STEP_TOL",
    "FD_ROUNDING",
    "FD_STEP",
    "FD_TOL",
    "FLOAT32_RTOL",
    "FLOAT32_STEP_TOL",
    "FLOAT64_RTOL",
    "FLOAT64_STEP_TOL",
    "FLOAT64_TRAJECTORY_TOL",
    "GAE_TOLERANCE",
    "GAUSSIAN_ROUNDING_FACTOR",
    "KINK_MARGIN",
    "LAW_TOL",
    "NORMALIZE_TOL",
    "POLICY_TOLERANCE",
    "SAMPLE_MARGIN",
    "VALUE_TOL",
    "assert_close",
    "returns_scale",
    "round_fields",
    "round_to_dtype",
    "rtol_for",
]

# Implementations against the spec.

FLOAT64_RTOL = 1e-12
"""Relative tolerance (to the inputs' scale) for float64 results.

A result of `runtime.returns` is a sum of up to `ROLLOUT_MAX_STEPS = 64` products, which a fast
implementation may associate in another order: at most about `64 * 2^-53 ~ 7e-15` of the scale
apart. `1e-12` leaves a factor of more than 100 for transcendental functions and reductions.
"""

FLOAT32_RTOL = 1e-5
"""Relative tolerance (to the inputs' scale) for float32 results: about `2^7` float32 units of
roundoff (`2^-24` each), above the `64 * 2^-24 ~ 4e-6` that a reordered sum of 64 terms may
lose."""

NORMALIZE_TOL = 1e-9
"""Absolute tolerance on the mean and standard deviation of normalised float64 advantages.

The law keeps batches whose standard deviation is at least `1e-6` of their largest entry, so
the cancellation in `a - mean` costs at most about `2^-52 * 1e6 ~ 2e-10`."""

MOMENTS_RTOL = 1e-9
"""Relative tolerance (to the size of the terms) of running float64 means, variances and the
values normalised or scaled by them: the batch sums may be taken in another order, and a
stream of up to a few dozen merges accumulates a few units of `2^-52` each; float32 results
are compared at `FLOAT32_RTOL` instead."""

SAMPLE_MARGIN = {torch.float64: 1e-9, torch.float32: 1e-5}
"""Relative distance from an inverse-CDF boundary below which sampled actions are not compared:
the two sides sum the action weights in different orders, so a `u` within rounding of a
boundary may legitimately go either way."""

# Laws of the spec.

LAW_TOL = 1e-12
"""Tolerance of the float64 laws of categorical policies and of the PPO loss terms, relative to
the size of the terms involved (absolute where they are of order one, as probabilities and
entropies are): each law sums at most a few dozen terms, a few units of roundoff each."""

VALUE_TOL = 1e-9
"""Relative tolerance of the values of tabular MDPs and of the laws of their Bellman operators:
linear solves and value iteration lose a few digits to conditioning (random MDPs are solved
with discounts of at most `properties.mdp.MAX_SOLVE_GAMMA`; GridWorlds have at most
`GRIDWORLD_MAX_SIDE^2 = 36` cells, each a shortest path away from the goal)."""

# The PPO loss's gradient.

FD_STEP = 1e-6
"""Step of the central finite differences: their truncation error is of order `FD_STEP^2`, their
rounding error of order `2^-53 |loss| / FD_STEP`."""

FD_TOL = 1e-6
"""Tolerance of a finite-difference derivative, relative to one plus its size: above both errors
of a step of `FD_STEP` for the sizes of loss the strategies draw."""

FD_ROUNDING = 16 * 2.0**-52 / FD_STEP
"""Rounding error of a central difference, relative to the size of the function differenced:
each of the two values is off by a few units of `2^-52` of its size, divided by the step `2 h`
(with a factor of 8 for the few operations that produced them). Added to `FD_TOL` where the
function is large against its derivative (a Gaussian's KL divergence with a small `sigma_q`)."""

KINK_MARGIN = 1e-4
"""Minimum distance of every sample from a kink of the loss (a clip boundary, the switch of the
clipped value loss's maximum): a hundred finite-difference steps, and more than a float32 ratio
is off by, so neither a step nor rounding crosses a kink."""

# Gaussian policies.

GAUSSIAN_ROUNDING_FACTOR = 4.0
"""Multiplies the first-order error bounds of `properties.gaussian` (the sizes of the terms of
each formula, and the amplification of the rounding of `x - mu` by `exp(-log_std)`): the
operations of one term are few, but each may round by one unit of its own size."""

# Environments.

FLOAT64_STEP_TOL = 1e-12
"""One float64 CartPole step: a few units in the last place of values below 10, room for the
last bits of `sin` and `cos` and for a different order of a few operations."""

FLOAT32_STEP_TOL = 1e-5
"""One float32 CartPole step from a float32 state, relative and absolute."""

FLOAT64_TRAJECTORY_TOL = 1e-9
"""Whole float64 CartPole episodes: a last-bit difference in `sin`/`cos` grows with the pole's
instability (roughly `e^(4.4 t)` for `t` seconds); 60 steps of 0.02 s amplify `1e-16` by less
than `1e3`."""

CARTPOLE_STEP_TOL = {torch.float64: FLOAT64_STEP_TOL, torch.float32: FLOAT32_STEP_TOL}
"""The tolerance of one CartPole step, by dtype."""

# Rollouts.

GAE_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10}
"""Absolute-and-relative tolerance between runtime GAE on a rollout, computed in the rollout's
dtype, and spec GAE in float64 on the same numbers."""

POLICY_TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-12}
"""Between the policy evaluated step by step during collection and on the whole rollout at once
(a batched matrix product may sum in another order)."""


def rtol_for(dtype: torch.dtype) -> float:
    """The named relative tolerance of a float dtype: `FLOAT64_RTOL` or `FLOAT32_RTOL`."""
    return {torch.float64: FLOAT64_RTOL, torch.float32: FLOAT32_RTOL}[dtype]


def round_to_dtype(array: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """`array` rounded to the float dtype `dtype` and kept as float64: what a tensor of that
    dtype holds, so that a check measures the arithmetic and not the rounding of its inputs."""
    np_dtype = {torch.float64: np.float64, torch.float32: np.float32}[dtype]
    return array.astype(np_dtype).astype(np.float64)


Record = TypeVar("Record", bound=NamedTuple)


def round_fields(record: Record, fields: Sequence[str], dtype: torch.dtype) -> Record:
    """`record` (a NamedTuple of arrays) with the arrays `fields` rounded by `round_to_dtype`."""
    return record._replace(**{f: round_to_dtype(getattr(record, f), dtype) for f in fields})


def returns_scale(arrays: RolloutArrays) -> np.ndarray:
    """The scale of a returns computation: the sum over time (axis 0) of `|r| + |V| + |V'|`,
    per column of a `[T, N]` rollout, or a scalar for a 1-D trace.

    It bounds every partial sum of GAE, lambda-returns, TD residuals and discounted returns when
    `gamma, lam <= 1`, so it is what their rounding errors are relative to.
    """
    return np.sum(np.abs(arrays.rewards) + np.abs(arrays.values) + np.abs(arrays.next_values), 0)


def assert_close(
    got: np.ndarray, want: np.ndarray, *, scale: np.ndarray | float, rtol: float, what: str
) -> None:
    """Raise AssertionError unless `got` has the shape of `want`, exactly its infinities, and
    `|got - want| <= rtol * (|want| + scale)` at every other entry."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{what}: got shape {got.shape}, expected {want.shape}")
    infinite = np.isinf(want)
    if np.any(infinite):
        np.testing.assert_array_equal(got[infinite], want[infinite], f"{what}: infinite entries")
        got, want = np.where(infinite, 0.0, got), np.where(infinite, 0.0, want)
    error = np.abs(got - want)
    bound = rtol * (np.abs(want) + scale)
    if not np.all(error <= bound):
        where = np.unravel_index(np.argmax(error - bound), np.shape(error))
        raise AssertionError(
            f"{what}: at index {tuple(int(i) for i in where)} got {got[where]!r}, expected "
            f"{want[where]!r} (error {error[where]:.3g} > bound {bound[where]:.3g})"
        )
