"""Numerical robustness of batched policy math: extreme logits, and inputs left as they were.

`properties.distributions` checks the categorical functions on moderate logits. Here the logits
are extreme (`extreme_logits`): entries up to `MAX_LOGIT[dtype]` in magnitude (1e4 and far
beyond: the naive `log(sum(exp(z)))` overflows from about 89 in float32 and 710 in float64),
rows shifted by a large common offset (softmax ignores it; the arithmetic must too), and
near-degenerate rows where one action takes almost all the probability (its log-probability
about 0, the others about `-gap`, the entropy about 0). The factories:

- `log_softmax_is_robust(log_softmax, dtype)`: finite, at most 0, and equal to
  `spec.distributions.log_softmax` to the dtype's tolerance relative to the row's scale;
- `entropy_is_robust(entropy, dtype)`: finite, in `[0, log A]`, and equal to the spec's;
- `leaves_inputs_unchanged(fn, arguments)`: calling `fn` on tensors drawn from `arguments` does
  not modify any of them in place (compared bit for bit with copies taken before the call).
"""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checked_rl.properties.tolerances import assert_close, round_to_dtype, rtol_for
from checked_rl.spec import distributions as spec_distributions

__all__ = [
    "MAX_LOGIT",
    "entropy_is_robust",
    "extreme_logits",
    "leaves_inputs_unchanged",
    "log_softmax_is_robust",
    "logits_arguments",
    "rollout_arguments",
]

MAX_LOGIT = {torch.float32: 1e37, torch.float64: 1e300}
"""The largest logit magnitude drawn per dtype: a tenth of what keeps every difference of two
logits finite in the dtype (float32's largest value is about 3.4e38)."""

_SCALES = (1.0, 1e2, 1e4, 1e6, 1e10, 1e20)
_OFFSETS = (0.0, 1e4, -1e4, 1e8, -1e8)


@st.composite
def extreme_logits(draw: st.DrawFn, dtype: torch.dtype = torch.float64) -> np.ndarray:
    """Logits `[B, A]` (float64 holding values of `dtype`): unit draws times a large scale,
    plus a large common offset, with one dominant action in some rows."""
    limit = MAX_LOGIT[dtype]
    shape = (draw(st.integers(1, 6)), draw(st.integers(2, 6)))
    unit = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1.0, 1.0)))
    scale = draw(st.sampled_from([*_SCALES, limit / 4]))
    offset = draw(st.sampled_from(_OFFSETS))
    z = unit * scale + offset
    if draw(st.booleans()):  # near-degenerate: one action far ahead of the others
        gap = draw(st.sampled_from([40.0, 1e3, 1e4, limit / 4]))
        rows = np.arange(shape[0])
        z[rows, draw(st.integers(0, shape[1] - 1))] = offset + gap
    return round_to_dtype(np.clip(z, -limit, limit), dtype)


def _scale(z: np.ndarray) -> np.ndarray:
    """`[B, 1]`: one plus the spread of each row (what `z - max z` rounds relative to)."""
    return 1.0 + (z.max(axis=-1, keepdims=True) - z.min(axis=-1, keepdims=True))


def _call(fn: Callable[[torch.Tensor], torch.Tensor], z: np.ndarray, dtype: torch.dtype) -> Any:
    return fn(torch.as_tensor(z, dtype=dtype)).detach().cpu().double().numpy()


def log_softmax_is_robust(
    log_softmax: Callable[[torch.Tensor], torch.Tensor], *, dtype: torch.dtype = torch.float64
) -> Callable[[], None]:
    """`log_softmax` of extreme logits is finite, at most 0 and the spec's (see module).

    Assumes logits `[B, A]` from `extreme_logits(dtype)` (finite, up to `MAX_LOGIT[dtype]`,
    large common offsets, near-degenerate rows), compared to `rtol_for(dtype)` times one plus
    the row's spread. Accepts implementations that subtract the row's maximum before adding the
    log of the sum, `(z - max) - log(sum(exp(z - max)))` in any order; it rejects
    `z - logsumexp(z)`, whose error grows with the common offset (`1e4` in float32 moves the
    result by about `2e-4`), and the naive `log(sum(exp(z)))`, which overflows.
    """

    @given(z=extreme_logits(dtype))
    def prop(z: np.ndarray) -> None:
        got = _call(log_softmax, z, dtype)
        assert np.all(np.isfinite(got)), f"log_softmax of finite logits is not finite: {got}"
        assert np.all(got <= 0.0), f"log_softmax above 0 (a probability above 1): {got.max()}"
        want = spec_distributions.log_softmax(z)
        assert_close(got, want, scale=_scale(z), rtol=rtol_for(dtype), what="log_softmax")

    return prop


def entropy_is_robust(
    entropy: Callable[[torch.Tensor], torch.Tensor], *, dtype: torch.dtype = torch.float64
) -> Callable[[], None]:
    """`entropy` of extreme logits is finite, in `[0, log A]` and the spec's (see module).

    Assumes logits as `log_softmax_is_robust`; `[0, log A]` and the spec are met to
    `rtol_for(dtype)` times `A` (and times twice one plus the row's spread for the spec).
    Accepts any stable form, such as `-(softmax(z) * log_softmax(z)).sum(-1)` or
    `logsumexp(z) - (softmax(z) * z).sum(-1)` with the maximum subtracted; it rejects one that
    forms `0 * -inf` (NaN) for an action whose probability underflows.
    """

    @given(z=extreme_logits(dtype))
    def prop(z: np.ndarray) -> None:
        got = _call(entropy, z, dtype)
        assert np.all(np.isfinite(got)), f"entropy of finite logits is not finite: {got}"
        tol = rtol_for(dtype) * z.shape[1]
        upper = math.log(z.shape[1])
        assert np.all(got >= -tol) and np.all(got <= upper + tol), (
            f"entropy outside [0, log {z.shape[1]}]: {got}"
        )
        want = spec_distributions.entropy(z)
        # each term p log p is off by about eps * |log p|, which is at most the row's spread
        scale = 2.0 * _scale(z)[:, 0] * z.shape[1]
        assert_close(got, want, scale=scale, rtol=rtol_for(dtype), what="entropy")

    return prop


def logits_arguments(dtype: torch.dtype = torch.float64) -> st.SearchStrategy[tuple[Any, ...]]:
    """`(logits,)` tuples of extreme logits as tensors, for `leaves_inputs_unchanged`."""
    return extreme_logits(dtype).map(lambda z: (torch.as_tensor(z, dtype=dtype),))


def leaves_inputs_unchanged(
    fn: Callable[..., Any], arguments: st.SearchStrategy[tuple[Any, ...]]
) -> Callable[[], None]:
    """`fn(*args)` modifies none of its tensor arguments (`args` drawn from `arguments`).

    Assumes `fn` accepts every tuple `arguments` draws (`logits_arguments`, `rollout_arguments`
    or the caller's own) and that its return value may be discarded; compares bit for bit, NaN
    equal to NaN. Accepts any function that writes only into new tensors (it may return a view
    of an input, or use `out=` buffers of its own); one that normalises or clips an argument in
    place is rejected.
    """

    @given(args=arguments)
    def prop(args: tuple[Any, ...]) -> None:
        copies = [arg.clone() if isinstance(arg, torch.Tensor) else None for arg in args]
        fn(*args)
        for index, (arg, copy) in enumerate(zip(args, copies, strict=True)):
            if copy is not None:
                same = arg.shape == copy.shape and bool(torch.equal(arg, copy) or (
                    arg.is_floating_point() and torch.equal(arg.isnan(), copy.isnan())
                    and torch.equal(arg.nan_to_num(), copy.nan_to_num())
                ))
                assert same, (
                    f"argument {index} was modified in place: it was {copy.tolist()}, "
                    f"now {arg.tolist()}"
                )

    return prop


@st.composite
def rollout_arguments(
    draw: st.DrawFn, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, ...]:
    """`(rewards, values, next_values, terminated, truncated)` as `[T, N]` tensors, for
    `leaves_inputs_unchanged` on a batched function of a rollout (a GAE)."""
    shape = (draw(st.integers(1, 8)), draw(st.integers(1, 4)))
    floats = hnp.arrays(np.float64, shape, elements=st.floats(-10.0, 10.0))
    flags = hnp.arrays(np.bool_, shape)
    values = [torch.as_tensor(draw(floats), dtype=dtype) for _ in range(3)]
    return (*values, *(torch.as_tensor(draw(flags)) for _ in range(2)))
