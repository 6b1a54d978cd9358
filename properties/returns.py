"""Properties of returns and advantages: batched implementations agree with `spec.returns`, and
the laws that any GAE must satisfy.

Two kinds of implementation are checked:

- *batched* ones with `runtime.returns`' interface: keyword arguments `rewards, values,
  next_values, terminated, truncated` as `[T, N]` tensors, `gamma`, `lam`; compared column by
  column with the spec (`*_matches_spec`);
- *trace* ones with `spec.returns`' interface: 1-D NumPy arrays over one environment's time axis
  (the laws). `on_trace` turns a batched implementation into a trace one, so the laws run on
  both.

Tolerances. The entries of a result are sums of up to `T` products of inputs, so rounding
errors scale with the inputs, not with the (possibly cancelled) result. Results are compared as
`|got - want| <= rtol * (|want| + scale)`, where `scale` is the column's sum of `|r| + |V| +
|V'|` (which bounds every partial sum when `gamma, lam <= 1`), with `rtol = FLOAT64_RTOL` in
float64 and `FLOAT32_RTOL` in float32. Float32 checks round the inputs to float32 first, so only
the arithmetic is measured.
"""

from collections.abc import Callable

import numpy as np
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from checked_rl.properties.strategies.rollouts import RolloutArrays, discounts, rollouts
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

FLOAT64_RTOL = 1e-12
"""Relative tolerance (to the inputs' scale) for float64 results."""

FLOAT32_RTOL = 1e-5
"""Relative tolerance (to the inputs' scale) for float32 results: about 2^7 float32 epsilons."""

NORMALIZE_TOL = 1e-9
"""Absolute tolerance on the mean and standard deviation of normalised float64 advantages."""

_FLOATS = ("rewards", "values", "next_values")
_FLAGS = ("terminated", "truncated")
_FIELDS = {
    "gae": (*_FLOATS, *_FLAGS),
    "lambda_returns": (*_FLOATS, *_FLAGS),
    "td_residuals": (*_FLOATS, "terminated"),
    "discounted_returns": ("rewards", "next_values", *_FLAGS),
}


def rtol_for(dtype: torch.dtype) -> float:
    """The named relative tolerance of a float dtype."""
    return {torch.float64: FLOAT64_RTOL, torch.float32: FLOAT32_RTOL}[dtype]


def round_to_dtype(array: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """`array` rounded to the float dtype `dtype` and kept as float64: what a tensor of that
    dtype holds, so that a check measures the arithmetic and not the rounding of its inputs."""
    np_dtype = {torch.float64: np.float64, torch.float32: np.float32}[dtype]
    return array.astype(np_dtype).astype(np.float64)


def _rounded(arrays: RolloutArrays, dtype: torch.dtype) -> RolloutArrays:
    """The rollout with its floats rounded to `dtype` (and kept as float64 NumPy arrays)."""
    return RolloutArrays(*(round_to_dtype(a, dtype) for a in arrays[:3]), *arrays[3:])


def _scale(arrays: RolloutArrays) -> np.ndarray:
    """Per column `[N]`: the sum over time of `|r| + |V| + |V'|`."""
    return np.sum(np.abs(arrays.rewards) + np.abs(arrays.values) + np.abs(arrays.next_values), 0)


def assert_close(
    got: np.ndarray, want: np.ndarray, *, scale: np.ndarray | float, rtol: float, what: str
) -> None:
    """Raise AssertionError unless `|got - want| <= rtol * (|want| + scale)` everywhere."""
    error = np.abs(got - want)
    bound = rtol * (np.abs(want) + scale)
    if not np.all(error <= bound):
        where = np.unravel_index(np.argmax(error - bound), np.shape(error))
        raise AssertionError(
            f"{what}: at index {tuple(int(i) for i in where)} got {got[where]!r}, expected "
            f"{want[where]!r} (error {error[where]:.3g} > bound {bound[where]:.3g})"
        )


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


def _matches_spec(name: str, fn: Callable[..., torch.Tensor], dtype: torch.dtype, device: str):
    """The property "batched `fn` agrees with `spec.returns.<name>` column by column"."""
    takes_lam = name in ("gae", "lambda_returns")

    @given(arrays=rollouts(), gamma=discounts(), lam=discounts())
    def prop(arrays: RolloutArrays, gamma: float, lam: float) -> None:
        arrays = _rounded(arrays, dtype)
        scalars = {"gamma": gamma, "lam": lam} if takes_lam else {"gamma": gamma}
        got = _batched_call(fn, name, arrays, dtype, device, **scalars)
        want = _spec_columns(name, arrays, **scalars)
        assert_close(got, want, scale=_scale(arrays), rtol=rtol_for(dtype), what=name)

    prop.__name__ = f"{name}_matches_spec"
    return prop


def gae_matches_spec(
    gae: Callable[..., torch.Tensor], *, dtype: torch.dtype = torch.float64, device: str = "cpu"
) -> Callable[[], None]:
    """Batched `gae` agrees with `spec.returns.gae` on every column."""
    return _matches_spec("gae", gae, dtype, device)


def lambda_returns_match_spec(
    lambda_returns: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `lambda_returns` agrees with `spec.returns.lambda_returns` on every column."""
    return _matches_spec("lambda_returns", lambda_returns, dtype, device)


def td_residuals_match_spec(
    td_residuals: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `td_residuals` agrees with `spec.returns.td_residuals` on every column."""
    return _matches_spec("td_residuals", td_residuals, dtype, device)


def discounted_returns_match_spec(
    discounted_returns: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `discounted_returns` agrees with `spec.returns.discounted_returns`."""
    return _matches_spec("discounted_returns", discounted_returns, dtype, device)


def normalize_matches_spec(
    normalize_advantages: Callable[[torch.Tensor], torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """Batched `normalize_advantages` over a whole `[T, N]` batch agrees with the spec's."""

    @given(arrays=rollouts())
    def prop(arrays: RolloutArrays) -> None:
        advantages = _rounded(arrays, dtype).rewards
        got = normalize_advantages(torch.as_tensor(advantages, dtype=dtype, device=device))
        want = spec_returns.normalize_advantages(advantages)
        # Entries are (a - mean) / (std + eps): the rounding scales with |a| + |mean| over std.
        scale = (np.abs(advantages) + abs(advantages.mean())) / (advantages.std() + 1e-8)
        assert_close(
            got.cpu().double().numpy(), want, scale=scale, rtol=rtol_for(dtype), what="normalize"
        )

    return prop


def on_trace(
    batched: Callable[..., torch.Tensor], *, dtype: torch.dtype = torch.float64, device: str = "cpu"
) -> Callable[..., np.ndarray]:
    """View a batched `[T, N]` implementation as a trace one: 1-D NumPy arrays in and out."""

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


def _traces(consistent: bool = False) -> st.SearchStrategy[RolloutArrays]:
    """Single-environment rollouts, as 1-D arrays."""
    return rollouts(max_envs=1, consistent=consistent).map(
        lambda a: RolloutArrays(*(x[:, 0] for x in a))
    )


def _trace_scale(arrays: RolloutArrays) -> float:
    return float(_scale(RolloutArrays(*(x[:, None] for x in arrays)))[0])


def gae_lam_one_is_monte_carlo_minus_values(
    gae: Callable[..., np.ndarray], discounted_returns: Callable[..., np.ndarray]
) -> Callable[[], None]:
    """On a consistent trace, `gae(lam=1) == discounted_returns - values` (Schulman et al. 2015,
    eq. 18)."""

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
        assert_close(
            advantages,
            returns - arrays.values,
            scale=_trace_scale(arrays),
            rtol=FLOAT64_RTOL,
            what="gae(lam=1) vs returns - values",
        )

    return prop


def gae_lam_zero_is_td_residual(
    gae: Callable[..., np.ndarray], td_residuals: Callable[..., np.ndarray]
) -> Callable[[], None]:
    """`gae(lam=0) == td_residuals` (Schulman et al. 2015, eq. 17)."""

    @given(arrays=_traces(), gamma=discounts())
    def prop(arrays: RolloutArrays, gamma: float) -> None:
        advantages = gae(**arrays._asdict(), gamma=gamma, lam=0.0)
        residuals = td_residuals(
            rewards=arrays.rewards,
            values=arrays.values,
            next_values=arrays.next_values,
            terminated=arrays.terminated,
            gamma=gamma,
        )
        assert_close(
            advantages,
            residuals,
            scale=_trace_scale(arrays),
            rtol=FLOAT64_RTOL,
            what="gae(lam=0) vs td_residuals",
        )

    return prop


def gae_is_discounted_sum_of_residuals(
    gae: Callable[..., np.ndarray], td_residuals: Callable[..., np.ndarray]
) -> Callable[[], None]:
    """`A_t = sum_{k=t}^{e(t)} (gamma lam)^(k-t) delta_k`, `e(t)` the first done step `>= t`
    (or `T - 1`): the closed form of Schulman et al. 2015, eq. 16."""

    @given(arrays=_traces(), gamma=discounts(), lam=discounts())
    def prop(arrays: RolloutArrays, gamma: float, lam: float) -> None:
        advantages = gae(**arrays._asdict(), gamma=gamma, lam=lam)
        delta = td_residuals(
            rewards=arrays.rewards,
            values=arrays.values,
            next_values=arrays.next_values,
            terminated=arrays.terminated,
            gamma=gamma,
        )
        done = arrays.terminated | arrays.truncated
        n_steps = delta.shape[0]
        closed_form = np.zeros(n_steps)
        for t in range(n_steps):
            for k in range(t, n_steps):
                closed_form[t] += (gamma * lam) ** (k - t) * delta[k]
                if done[k]:
                    break
        assert_close(
            advantages,
            closed_form,
            scale=_trace_scale(arrays),
            rtol=FLOAT64_RTOL,
            what="gae vs the sum of discounted residuals",
        )

    return prop


def truncation_bootstraps_termination_does_not(
    gae: Callable[..., np.ndarray],
) -> Callable[[], None]:
    """Changing `next_values` at a terminated step changes nothing; at a truncated, not
    terminated step `t` it moves `A_t` by exactly `gamma` times the change and leaves every
    later step alone."""

    @given(arrays=_traces(), gamma=discounts(), lam=discounts(), shift=st.floats(-100.0, 100.0))
    def prop(arrays: RolloutArrays, gamma: float, lam: float, shift: float) -> None:
        base = gae(**arrays._asdict(), gamma=gamma, lam=lam)
        shifted_terminal = arrays.next_values + np.where(arrays.terminated, shift, 0.0)
        moved = gae(
            **arrays._replace(next_values=shifted_terminal)._asdict(), gamma=gamma, lam=lam
        )
        np.testing.assert_array_equal(moved, base, "a terminated step bootstrapped")
        cut = np.flatnonzero(arrays.truncated & ~arrays.terminated)
        assume(cut.size > 0)
        t = int(cut[-1])
        next_values = arrays.next_values.copy()
        next_values[t] += shift
        moved = gae(**arrays._replace(next_values=next_values)._asdict(), gamma=gamma, lam=lam)
        np.testing.assert_array_equal(moved[t + 1 :], base[t + 1 :], "a later step moved")
        scale = _trace_scale(arrays) + abs(shift)
        assert_close(
            np.array([moved[t] - base[t]]),
            np.array([gamma * (next_values[t] - arrays.next_values[t])]),
            scale=scale,
            rtol=FLOAT64_RTOL,
            what=f"the bootstrap of truncated step {t}",
        )

    return prop


def lambda_returns_are_advantages_plus_values(
    lambda_returns: Callable[..., np.ndarray], gae: Callable[..., np.ndarray]
) -> Callable[[], None]:
    """`lambda_returns == gae + values` (the value targets)."""

    @given(arrays=_traces(), gamma=discounts(), lam=discounts())
    def prop(arrays: RolloutArrays, gamma: float, lam: float) -> None:
        targets = lambda_returns(**arrays._asdict(), gamma=gamma, lam=lam)
        advantages = gae(**arrays._asdict(), gamma=gamma, lam=lam)
        assert_close(
            targets,
            advantages + arrays.values,
            scale=_trace_scale(arrays),
            rtol=FLOAT64_RTOL,
            what="lambda_returns vs gae + values",
        )

    return prop


def normalized_advantages_are_standardized(
    normalize_advantages: Callable[[np.ndarray], np.ndarray],
) -> Callable[[], None]:
    """Normalised advantages have mean 0 and standard deviation `std / (std + eps)`, i.e. 1 up
    to the epsilon, whenever the batch is not constant; a constant batch maps to zeros (up to
    the rounding of its mean)."""

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


def _message_names(error: Exception, name: str) -> bool:
    """Whether an error message singles out the argument `name` (jaxtyping's or ours)."""
    message = str(error)
    return f"parameter '{name}'" in message or f"{name} must" in message


def rejects_mismatched_arguments(
    fn: Callable[..., torch.Tensor], name: str = "gae"
) -> Callable[[], None]:
    """A batched function rejects an argument whose shape or dtype differs from `rewards`' with
    a TypeError or ValueError that names that argument.

    `name` is the spec function the arguments follow (`gae`, `lambda_returns`, `td_residuals`
    or `discounted_returns`).
    """
    fields = _FIELDS[name]
    takes_lam = name in ("gae", "lambda_returns")

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
        scalars = {"gamma": 0.9, "lam": 0.9} if takes_lam else {"gamma": 0.9}
        try:
            fn(**kwargs, **scalars)
        except (TypeError, ValueError) as error:
            assert _message_names(error, culprit), (
                f"{fault} in {culprit}: the error does not name {culprit!r}: {error}"
            )
        else:
            raise AssertionError(f"{fault} in {culprit} was accepted")

    return prop
