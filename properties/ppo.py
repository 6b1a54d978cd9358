"""Properties of the PPO loss: a batched implementation agrees with `spec.ppo.ppo_loss` (or,
from log-probabilities and entropies, with `spec.ppo.ppo_loss_from_log_probs`), term by term,
and its autograd gradient agrees with central finite differences of the spec's loss. The laws
of the paper are in `properties.ppo_laws`.

What the properties assume of their inputs: minibatches of `ppo_minibatches` (finite logits
`[B, A]`, an old policy within `POLICY_DRIFT` of the current one per logit, so ratios in
`[e^-2, e^2]`, clip coefficients in `[0.05, 0.5]`); they accept any implementation of the
spec's formulas, whatever its order of operations, away from the kinks named below.
`clip_fraction_matches_spec` goes onto the clip bounds themselves, where the spec decides: a
ratio exactly on `1 +- eps` is not clipped.

The implementation under test has `runtime.ppo.loss.ppo_loss`' interface: keyword tensors
(`logits [B, A]`, `actions [B]`, the rest `[B]`) and settings, or
`ppo_loss_from_log_probs`' (`new_log_probs [B]` and `entropies [B]` in place of logits and
actions), returning `(total, stats)` with
`stats.policy_loss, value_loss, entropy, approx_kl, clip_fraction`.

Tolerances (`properties.tolerances`): losses are compared as
`|got - want| <= rtol * (|want| + scale)`, `rtol` the named tolerance of the dtype and `scale`
the sizes of the terms that were summed. The clip fraction
counts ratios outside `[1 - eps, 1 + eps]`, a step function: the counts are compared exactly,
and only where no ratio lies within `KINK_MARGIN` of a clip boundary. The gradient check uses
float64, step `FD_STEP` and tolerance `FD_TOL`, and keeps away from every kink of the loss (the
clip boundaries of the ratio and of the value, and the switch of the clipped value loss's
maximum) by `KINK_MARGIN`, filtering the rest out with `assume`.
"""

from collections.abc import Callable

import numpy as np
import torch
from hypothesis import assume, example, given
from hypothesis import strategies as st

from checked_rl.properties.arguments import assert_rejects_argument
from checked_rl.properties.strategies.rollouts import PPOMinibatch, ppo_minibatches
from checked_rl.properties.tolerances import (
    FD_STEP,
    FD_TOL,
    KINK_MARGIN,
    assert_close,
    round_fields,
    round_to_dtype,
    rtol_for,
)
from checked_rl.spec import ppo as spec_ppo
from checked_rl.spec.distributions import entropy, log_prob

__all__ = [
    "FD_STEP",
    "FD_TOL",
    "KINK_MARGIN",
    "clip_fraction_matches_spec",
    "ppo_gradient_matches_finite_differences",
    "ppo_log_prob_gradient_matches_finite_differences",
    "ppo_loss_from_log_probs_matches_spec",
    "ppo_loss_matches_spec",
    "ppo_loss_rejects_mismatched_arguments",
]

_STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
_FLOAT_FIELDS = ("logits", "old_log_probs", "advantages", "values", "returns", "old_values")


def _settings(batch: PPOMinibatch) -> dict[str, object]:
    return dict(
        clip_coef=batch.clip_coef,
        value_clip_coef=batch.value_clip_coef,
        value_coef=batch.value_coef,
        entropy_coef=batch.entropy_coef,
    )


def _spec_loss(batch: PPOMinibatch) -> tuple[float, spec_ppo.PPOStats]:
    return spec_ppo.ppo_loss(
        logits=batch.logits,
        actions=batch.actions,
        old_log_probs=batch.old_log_probs,
        advantages=batch.advantages,
        values=batch.values,
        returns=batch.returns,
        old_values=batch.old_values,
        **_settings(batch),
    )


def _tensors(batch: PPOMinibatch, dtype: torch.dtype, device: str) -> dict[str, torch.Tensor]:
    tensors = {
        f: torch.tensor(getattr(batch, f), dtype=dtype, device=device) for f in _FLOAT_FIELDS
    }
    tensors["actions"] = torch.tensor(batch.actions, device=device)
    return tensors


def _ratio_margin(batch: PPOMinibatch) -> float:
    """The smallest distance of a ratio from the clip boundaries `1 +- eps`."""
    ratio = np.exp(log_prob(batch.logits, batch.actions) - batch.old_log_probs)
    return float(np.min(np.abs(np.abs(ratio - 1.0) - batch.clip_coef)))


def _value_margin(batch: PPOMinibatch) -> float:
    """The smallest distance from a kink of the (clipped) value loss; infinite when unclipped."""
    if batch.value_clip_coef is None:
        return float("inf")
    step = batch.values - batch.old_values
    clipped = batch.old_values + np.clip(step, -batch.value_clip_coef, batch.value_clip_coef)
    switch = np.abs((batch.values - batch.returns) ** 2 - (clipped - batch.returns) ** 2)
    boundary = np.abs(np.abs(step) - batch.value_clip_coef)
    return float(min(np.min(switch), np.min(boundary)))


def ppo_loss_matches_spec(
    ppo_loss: Callable[..., tuple[torch.Tensor, tuple]],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """A batched PPO loss agrees with `spec.ppo.ppo_loss`: the total and every statistic.

    Assumes `ppo_minibatches` (logits `[B, A]`, ratios in `[e^-2, e^2]`, value clipping on or
    off), with no ratio within `KINK_MARGIN` of a clip bound (there `clip_fraction_matches_spec`
    decides); accepts any order of operations of the spec's formulas.
    """

    @given(batch=ppo_minibatches())
    @example(  # found by Hypothesis: a float32 clip fraction 1/3 is not the float64 one
        batch=PPOMinibatch(
            logits=np.zeros((3, 2)),
            actions=np.zeros(3, dtype=np.int64),
            old_log_probs=np.array([-1.31326169, -0.69314718, -0.69314718]),
            advantages=np.zeros(3),
            values=np.zeros(3),
            returns=np.zeros(3),
            old_values=np.zeros(3),
            clip_coef=0.5,
            value_clip_coef=None,
            value_coef=0.0,
            entropy_coef=0.0,
        )
    )
    def prop(batch: PPOMinibatch) -> None:
        batch = round_fields(batch, _FLOAT_FIELDS, dtype)
        assume(_ratio_margin(batch) > KINK_MARGIN)
        total, stats = ppo_loss(**_tensors(batch, dtype, device), **_settings(batch))
        _assert_matches(total, stats, _spec_loss(batch), batch, dtype)

    return prop


def _log_prob_arrays(batch: PPOMinibatch, dtype: torch.dtype) -> dict[str, np.ndarray]:
    """The arrays of `batch` in `ppo_loss_from_log_probs`' form (the logits' log-probabilities
    of the actions and their entropies instead of logits and actions), rounded to `dtype`."""
    arrays = {f: getattr(batch, f) for f in _FLOAT_FIELDS if f != "logits"}
    arrays.update(new_log_probs=log_prob(batch.logits, batch.actions),
                  entropies=entropy(batch.logits))
    return {name: round_to_dtype(array, dtype) for name, array in arrays.items()}


def _assert_matches(
    total: torch.Tensor, stats: tuple, want: tuple[float, spec_ppo.PPOStats],
    batch: PPOMinibatch, dtype: torch.dtype,
) -> None:
    """The total and every statistic of an implementation agree with the spec's `want`."""
    want_total, want_stats = want
    # Sizes of the summed terms: |r A| <= e^2 |A|, squared errors, entropies <= log A.
    scale = (
        10.0 * np.abs(batch.advantages).mean()
        + np.mean((np.abs(batch.values) + np.abs(batch.returns) + 4.0) ** 2)
        + np.log(batch.logits.shape[1])
        + np.abs(batch.logits).max()
    )
    for name, got, expected in [
        ("total", total, want_total),
        *((n, getattr(stats, n), getattr(want_stats, n)) for n in _STATS),
    ]:
        got = float(got)
        if name == "clip_fraction":  # compare the counts: exact integers in every dtype
            n_samples = batch.actions.size
            assert round(got * n_samples) == round(expected * n_samples), (
                f"clip_fraction: got {got!r}, spec {expected!r}"
            )
            continue
        assert_close(np.float64(got), np.float64(expected), scale=scale, rtol=rtol_for(dtype),
                     what=name)


def ppo_loss_from_log_probs_matches_spec(
    ppo_loss_from_log_probs: Callable[..., tuple[torch.Tensor, tuple]],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """A batched loss from log-probabilities agrees with `spec.ppo.ppo_loss_from_log_probs`:
    the total and every statistic.

    Assumes `ppo_minibatches` turned into log-probabilities and entropies of their logits (so
    ratios in `[e^-2, e^2]`), with no ratio within `KINK_MARGIN` of a clip bound; accepts any
    order of operations of the spec's formulas.
    """

    @given(batch=ppo_minibatches())
    def prop(batch: PPOMinibatch) -> None:
        arrays = _log_prob_arrays(batch, dtype)
        ratio = np.exp(arrays["new_log_probs"] - arrays["old_log_probs"])
        assume(np.min(np.abs(np.abs(ratio - 1.0) - batch.clip_coef)) > KINK_MARGIN)
        tensors = {n: torch.tensor(a, dtype=dtype, device=device) for n, a in arrays.items()}
        total, stats = ppo_loss_from_log_probs(**tensors, **_settings(batch))
        want = spec_ppo.ppo_loss_from_log_probs(**arrays, **_settings(batch))
        _assert_matches(total, stats, want, batch, dtype)

    return prop


def clip_fraction_matches_spec(
    clip_fraction: Callable[..., torch.Tensor],
    *,
    dtype: torch.dtype = torch.float64,
    device: str = "cpu",
) -> Callable[[], None]:
    """A batched `clip_fraction(new_log_probs, old_log_probs, clip_coef=eps)` counts exactly the
    samples `spec.ppo.clip_fraction` counts, ratios exactly on a clip bound included (they are
    not clipped).

    Reaches the bounds two ways: `eps = 0` with samples whose log-probabilities are equal (the
    ratio is exactly 1 = 1 +- 0 in any dtype, whatever the implementation's `exp`), and, in
    float64, `eps = |r_b - 1|` for a sample `b`, kept only where `torch.exp` rounds `r_b` as
    NumPy does (so the implementation is assumed to compute `r = exp(new - old)` with
    `torch.exp`). Every other ratio is kept `KINK_MARGIN` away from the bounds, where rounding
    may decide either way. Assumes log-ratios in `[-2, 2]` and, for the float64 bound, a ratio
    computed with `torch.exp`; accepts any implementation of the spec's rule.
    """

    @given(data=st.data())
    def prop(data: st.DataObject) -> None:
        n = data.draw(st.integers(1, 8))
        log_probs = st.floats(-5.0, 0.0)
        old = np.array(data.draw(st.lists(log_probs, min_size=n, max_size=n)))
        step = st.sampled_from([0.0]) | st.floats(-2.0, 2.0)
        new = old + np.array(data.draw(st.lists(step, min_size=n, max_size=n)))
        new, old = round_to_dtype(new, dtype), round_to_dtype(old, dtype)
        ratio = np.exp(new - old)
        exact = new == old
        eps = data.draw(st.sampled_from(["zero", "sample", "any"]))
        if eps == "zero":
            clip_coef = 0.0
        elif eps == "sample" and dtype == torch.float64:
            b = data.draw(st.integers(0, n - 1))
            torch_ratio = float(torch.exp(torch.tensor(new[b] - old[b], dtype=torch.float64)))
            assume(torch_ratio == ratio[b] and ratio[b] != 1.0)
            clip_coef = abs(float(ratio[b]) - 1.0)
            exact |= ratio == ratio[b]
        else:
            clip_coef = data.draw(st.floats(0.05, 0.5))
            exact[:] = False
        bounds = np.array([1.0 - clip_coef, 1.0 + clip_coef])
        distance = np.min(np.abs(ratio[:, None] - bounds), axis=1)
        assume(np.all(exact | (distance > KINK_MARGIN)))
        got = clip_fraction(
            torch.as_tensor(new, dtype=dtype, device=device),
            torch.as_tensor(old, dtype=dtype, device=device),
            clip_coef=clip_coef,
        )
        want = spec_ppo.clip_fraction(new, old, clip_coef=clip_coef)
        assert round(float(got) * n) == round(want * n), (
            f"clip_fraction {float(got)!r}, spec {want!r}: ratios {ratio}, eps {clip_coef!r}"
        )

    return prop


def _assert_gradient(
    gradients: dict[str, torch.Tensor], arrays: dict[str, np.ndarray],
    spec_total: Callable[[dict[str, np.ndarray]], float],
) -> None:
    """Each autograd gradient (of the arrays it names) equals central finite differences of
    `spec_total(arrays)` with step `FD_STEP`, within `FD_TOL`."""
    for field, grad in gradients.items():
        array = arrays[field]
        for index in np.ndindex(array.shape):
            up, down = array.copy(), array.copy()
            up[index] += FD_STEP
            down[index] -= FD_STEP
            numeric = (spec_total({**arrays, field: up})
                       - spec_total({**arrays, field: down})) / (2 * FD_STEP)
            analytic = float(grad[index])
            assert abs(analytic - numeric) <= FD_TOL * (1.0 + abs(numeric)), (
                f"d loss / d {field}{list(index)}: autograd {analytic!r}, "
                f"finite difference {numeric!r}"
            )


def ppo_gradient_matches_finite_differences(
    ppo_loss: Callable[..., tuple[torch.Tensor, tuple]], *, device: str = "cpu"
) -> Callable[[], None]:
    """The float64 autograd gradient of the total loss with respect to `logits` and `values`
    equals central finite differences of `spec.ppo.ppo_loss`, away from kinks.

    Assumes `ppo_minibatches` of at most 4 samples, every ratio and value `KINK_MARGIN` away from
    a kink; accepts any differentiable implementation.
    """

    @given(batch=ppo_minibatches(max_batch=4))
    def prop(batch: PPOMinibatch) -> None:
        assume(_ratio_margin(batch) > KINK_MARGIN)
        assume(_value_margin(batch) > KINK_MARGIN)
        tensors = _tensors(batch, torch.float64, device)
        wrt = ("logits", "values")
        for name in wrt:
            tensors[name].requires_grad_(True)
        total, _ = ppo_loss(**tensors, **_settings(batch))
        grads = torch.autograd.grad(total, [tensors[n] for n in wrt], materialize_grads=True)
        _assert_gradient(dict(zip(wrt, grads, strict=True)), batch._asdict(),
                         lambda arrays: _spec_loss(batch._replace(**arrays))[0])

    return prop


def ppo_log_prob_gradient_matches_finite_differences(
    ppo_loss_from_log_probs: Callable[..., tuple[torch.Tensor, tuple]], *, device: str = "cpu"
) -> Callable[[], None]:
    """The float64 autograd gradient of the total loss from log-probabilities with respect to
    `new_log_probs`, `entropies` and `values` equals central finite differences of
    `spec.ppo.ppo_loss_from_log_probs`, away from kinks.

    Assumes `ppo_minibatches` of at most 4 samples in log-probability form, every ratio and
    value `KINK_MARGIN` away from a kink; accepts any differentiable implementation.
    """

    @given(batch=ppo_minibatches(max_batch=4))
    def prop(batch: PPOMinibatch) -> None:
        assume(_ratio_margin(batch) > KINK_MARGIN)
        assume(_value_margin(batch) > KINK_MARGIN)
        arrays = _log_prob_arrays(batch, torch.float64)
        tensors = {n: torch.tensor(a, dtype=torch.float64, device=device)
                   for n, a in arrays.items()}
        wrt = ("new_log_probs", "entropies", "values")
        for name in wrt:
            tensors[name].requires_grad_(True)
        total, _ = ppo_loss_from_log_probs(**tensors, **_settings(batch))
        grads = torch.autograd.grad(total, [tensors[n] for n in wrt], materialize_grads=True)
        _assert_gradient(
            dict(zip(wrt, grads, strict=True)), arrays,
            lambda changed: spec_ppo.ppo_loss_from_log_probs(**changed, **_settings(batch))[0],
        )

    return prop


def ppo_loss_rejects_mismatched_arguments(
    ppo_loss: Callable[..., tuple[torch.Tensor, tuple]],
) -> Callable[[], None]:
    """A per-sample argument whose batch shape differs from the logits' is rejected with a
    TypeError or ValueError that names the argument.

    Assumes `ppo_minibatches` with one argument made longer or given an extra axis; accepts an
    implementation that checks its arguments' shapes before computing.
    """
    per_sample = ("actions", "old_log_probs", "advantages", "values", "returns", "old_values")

    @given(batch=ppo_minibatches(), culprit=st.sampled_from(per_sample), longer=st.booleans())
    def prop(batch: PPOMinibatch, culprit: str, longer: bool) -> None:
        tensors = _tensors(batch, torch.float64, "cpu")
        bad = tensors[culprit]
        tensors[culprit] = torch.cat([bad, bad[:1]]) if longer else bad[:, None]
        settings = _settings(batch._replace(value_clip_coef=0.2))
        assert_rejects_argument(
            lambda: ppo_loss(**tensors, **settings),
            culprit,
            f"a {culprit} of shape {tuple(tensors[culprit].shape)}",
        )

    return prop
