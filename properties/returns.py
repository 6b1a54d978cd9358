"""Properties of returns and advantages: batched implementations agree with `spec.returns`.

The implementations checked here are *batched* ones, with `runtime.returns`' interface: keyword
arguments `rewards, values, next_values, terminated, truncated` as `[T, N]` tensors, `gamma`,
`lam`; they are compared column by column with the spec (`*_matches_spec`). The laws that any
GAE must satisfy take *trace* implementations (1-D NumPy arrays over one environment's time
axis); they live in `properties.returns_laws` and are re-exported here, and `on_trace` turns a
batched implementation into a trace one, so the laws run on both.

What the properties assume of their inputs, and so which implementations they accept. By
default the rollouts are *consistent* (`strategies.consistent_rollouts`): `next_values[t] ==
values[t + 1]` wherever step `t` did not end an episode, as every environment produces them, so
an implementation that takes `V(s_{t+1})` from `values[t + 1]` inside an episode (the textbook
TD(lambda) recursion) is accepted, and so is one that reads `next_values` everywhere. With
`consistent=False` the rollouts are *general* (`strategies.rollouts`): `next_values[t]` is
free at every step, which accepts only implementations that read the successor's value from
`next_values` at every step, as `runtime.returns` and the spec do; use it for an implementation
that claims so, e.g. one fed rollouts whose `next_values` were recomputed by a newer critic.

Tolerances (`properties.tolerances`). The entries of a result are sums of up to `T` products of
inputs, so rounding errors scale with the inputs, not with the (possibly cancelled) result.
Results are compared as `|got - want| <= rtol * (|want| + scale)`, where `scale` is the
column's `returns_scale`, the sum of `|r| + |V| + |V'|` (which bounds every partial sum when
`gamma, lam <= 1`), with `rtol = FLOAT64_RTOL` in float64 and `FLOAT32_RTOL` in float32. Float32
checks round the inputs to float32 first, so only the arithmetic is measured.
"""

from collections.abc import Callable

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from checked_rl.properties.arguments import assert_rejects_argument
from checked_rl.properties.returns_laws import (
    gae_is_discounted_sum_of_residuals,
    gae_lam_one_is_monte_carlo_minus_values,
    gae_lam_zero_is_td_residual,
    lambda_returns_are_advantages_plus_values,
    normalized_advantages_are_standardized,
    truncation_bootstraps_termination_does_not,
)
from checked_rl.properties.strategies.rollouts import RolloutArrays, discounts, rollouts
from checked_rl.properties.tolerances import (
    FLOAT32_RTOL,
    FLOAT64_RTOL,
    NORMALIZE_TOL,
    assert_close,
    returns_scale,
    round_fields,
    round_to_dtype,
    rtol_for,
)
from checked_rl.spec import returns as spec_returns

__all__ = [
    "FLOAT32_RTOL",
    "FLOAT64_RTOL",
    "NORMALIZE_TOL",
    "assert_close",
    "discounted_returns_match_spec",
    "gae_is_discounted_sum_of_residuals",
    "gae_lam_one_is_monte_carlo_minus_values",
    "gae_lam_zero_is_td_residual",
    "gae_matches_spec",
    "lambda_returns_are_advantages_plus_values",
    "lambda_returns_match_spec",
    "normalize_matches_spec",
    "normalized_advantages_are_standardized",
    "on_trace",
    "rejects_mismatched_arguments",
    "round_to_dtype",
    "rtol_for",
    "td_residuals_match_spec",
    "truncation_bootstraps_termination_does_not",
]

_FLOATS = ("rewards", "values", "next_values")
_FLAGS = ("terminated", "truncated")
_FIELDS = {
    "gae": (*_FLOATS, *_FLAGS),
    "lambda_returns": (*_FLOATS, *_FLAGS),
    "td_residuals": (*_FLOATS, "terminated"),
    "discounted_returns": ("rewards", "next_values", *_FLAGS),
}


def _scalars(name: str, *, gamma: float, lam: float) -> dict[str, float]:
    """The scalar arguments that `name` takes: `gamma`, and `lam` for GAE and lambda-returns."""
    return {"gamma": gamma, "lam": lam} if name in ("gae", "lambda_returns") else {"gamma": gamma}


def _tensors(
    name: str, arrays: RolloutArrays, dtype: torch.dtype, device: str
) -> dict[str, torch.Tensor]:
    """The rollout's fields that `name` takes, as tensors: floats in `dtype`, flags bool."""
    return {
        field: torch.as_tensor(
            getattr(arrays, field), dtype=None if field in _FLAGS else dtype, device=device
        )
        for field in _FIELDS[name]
    }


def _batched_call(
    fn: Callable[..., torch.Tensor],
    name: str,
    arrays: RolloutArrays,
    dtype: torch.dtype,
    device: str,
    **scalars: float,
) -> np.ndarray:
    """Call a batched implementation on the rollout's fields that `name` takes."""
    result = fn(**_tensors(name, arrays, dtype, device), **scalars)
    if result.shape != arrays.rewards.shape or result.dtype != dtype:
        raise AssertionError(
            f"{name}: expected a {dtype} result of shape {arrays.rewards.shape}, "
            f"got {result.dtype} {tuple(result.shape)}"
        )
    return result.detach().cpu().double().numpy()


def _spec_columns(name: str, arrays: RolloutArrays, **scalars: float) -> np.ndarray:
    """The spec function `name` applied to every column, stacked back to `[T, N]`."""
    reference = getattr(spec_returns, name)
    columns = [
        reference(**{field: getattr(arrays, field)[:, n] for field in _FIELDS[name]}, **scalars)
        for n in range(arrays.rewards.shape[1])
    ]
    return np.stack(columns, axis=1)


def _matches_spec(
    name: str, fn: Callable[..., torch.Tensor], dtype: torch.dtype, device: str, consistent: bool
):
    """The property "batched `fn` agrees with `spec.returns.<name>` column by column"."""

    @given(arrays=rollouts(consistent=consistent), gamma=discounts(), lam=discounts())
    def prop(arrays: RolloutArrays, gamma: float, lam: float) -> None:
        arrays = round_fields(arrays, _FLOATS, dtype)
        scalars = _scalars(name, gamma=gamma, lam=lam)
        got = _batched_call(fn, name, arrays, dtype, device, **scalars)
        want = _spec_columns(name, arrays, **scalars)
        assert_close(got, want, scale=returns_scale(arrays), rtol=rtol_for(dtype), what=name)

    prop.__name__ = f"{name}_matches_spec"
    return prop


def gae_matches_spec(
    gae: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
    consistent: bool = True,
) -> Callable[[], None]:
    """Batched `gae` agrees with `spec.returns.gae` on every column.

    Assumes consistent rollouts (`next_values[t] == values[t + 1]` inside an episode), so it
    accepts an implementation that reads `V(s_{t+1})` from `values[t + 1]` there as well as one
    that reads `next_values` everywhere; `consistent=False` draws general rollouts and accepts
    only the latter. Inputs: floats in `dtype` on `device`, bool flags, `[T, N]`.
    """
    return _matches_spec("gae", gae, dtype, device, consistent)


def lambda_returns_match_spec(
    lambda_returns: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
    consistent: bool = True,
) -> Callable[[], None]:
    """Batched `lambda_returns` agrees with `spec.returns.lambda_returns` on every column.

    Assumes consistent rollouts (`next_values[t] == values[t + 1]` inside an episode), so it
    accepts an implementation that reads `V(s_{t+1})` from `values[t + 1]` there as well as one
    that reads `next_values` everywhere; `consistent=False` draws general rollouts and accepts
    only the latter. Inputs: floats in `dtype` on `device`, bool flags, `[T, N]`.
    """
    return _matches_spec("lambda_returns", lambda_returns, dtype, device, consistent)


def td_residuals_match_spec(
    td_residuals: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
    consistent: bool = True,
) -> Callable[[], None]:
    """Batched `td_residuals` agrees with `spec.returns.td_residuals` on every column.

    Assumes consistent rollouts (`next_values[t] == values[t + 1]` inside an episode), so it
    accepts an implementation that reads `V(s_{t+1})` from `values[t + 1]` there as well as one
    that reads `next_values` everywhere; `consistent=False` draws general rollouts and accepts
    only the latter. Inputs: floats in `dtype` on `device`, bool flags, `[T, N]`.
    """
    return _matches_spec("td_residuals", td_residuals, dtype, device, consistent)


def discounted_returns_match_spec(
    discounted_returns: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `discounted_returns` agrees with `spec.returns.discounted_returns`.

    Assumes nothing of the rollout (general rollouts): the returns take no `values`, and the
    spec reads `next_values` only where a trace is cut (terminations ignore it, truncations and
    the last step bootstrap from it), so it accepts every correct implementation whatever
    `next_values` holds elsewhere.
    Inputs: floats in `dtype` on `device`, bool flags, `[T, N]`.
    """
    return _matches_spec("discounted_returns", discounted_returns, dtype, device, False)


def normalize_matches_spec(
    normalize_advantages: Callable[[torch.Tensor], torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `normalize_advantages` over a whole `[T, N]` batch agrees with the spec's.

    Assumes nothing of the rollout (any finite advantages); accepts any implementation with the
    spec's population standard deviation and epsilon.
    """

    @given(arrays=rollouts())
    def prop(arrays: RolloutArrays) -> None:
        advantages = round_to_dtype(arrays.rewards, dtype)
        got = normalize_advantages(torch.as_tensor(advantages, dtype=dtype, device=device))
        want = spec_returns.normalize_advantages(advantages)
        # Entries are (a - mean) / (std + eps): the rounding scales with |a| + |mean| over std.
        spread = advantages.std() + spec_returns.NORMALIZE_EPS
        scale = (np.abs(advantages) + abs(advantages.mean())) / spread
        assert_close(
            got.cpu().double().numpy(), want, scale=scale, rtol=rtol_for(dtype), what="normalize"
        )

    return prop


def on_trace(
    batched: Callable[..., torch.Tensor], *, dtype: torch.dtype = torch.float64, device: str = "cpu"
) -> Callable[..., np.ndarray]:
    """View a batched `[T, N]` implementation as a trace one: 1-D NumPy arrays in and out
    (one environment, `N = 1`), for the laws of `properties.returns_laws`."""

    def trace_fn(**kwargs: object) -> np.ndarray:
        tensors = {}
        for key, value in kwargs.items():
            if key in _FLOATS or key in _FLAGS:
                array = np.asarray(value)[:, None]
                tensors[key] = torch.as_tensor(
                    array, dtype=None if key in _FLAGS else dtype, device=device
                )
            else:
                tensors[key] = value
        return batched(**tensors)[:, 0].detach().cpu().double().numpy()

    return trace_fn


def rejects_mismatched_arguments(
    fn: Callable[..., torch.Tensor], name: str = "gae"
) -> Callable[[], None]:
    """A batched function rejects an argument whose shape or dtype differs from `rewards`' with
    a TypeError or ValueError that names that argument.

    `name` is the spec function the arguments follow (`gae`, `lambda_returns`, `td_residuals`
    or `discounted_returns`). Assumes nothing of the values (general rollouts); accepts an
    implementation that checks its arguments' layout before computing.
    """
    fields = _FIELDS[name]

    @given(
        arrays=rollouts(max_steps=8),
        culprit=st.sampled_from([f for f in fields if f != "rewards"]),
        fault=st.sampled_from(["more steps", "more envs", "extra axis", "other dtype"]),
    )
    def prop(arrays: RolloutArrays, culprit: str, fault: str) -> None:
        kwargs = _tensors(name, arrays, torch.float64, "cpu")
        bad = kwargs[culprit]
        if fault == "more steps":
            bad = torch.cat([bad, bad[:1]], dim=0)
        elif fault == "more envs":
            bad = torch.cat([bad, bad[:, :1]], dim=1)
        elif fault == "extra axis":
            bad = bad[..., None]
        else:
            bad = bad.float() if culprit in _FLOATS else bad.to(torch.uint8)
        kwargs[culprit] = bad
        scalars = _scalars(name, gamma=0.9, lam=0.9)
        assert_rejects_argument(lambda: fn(**kwargs, **scalars), culprit, f"{fault} in {culprit}")

    return prop
