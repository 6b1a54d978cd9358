"""Properties of the PPO loss: a batched implementation agrees with `spec.ppo.ppo_loss`, term by
term, and its autograd gradient agrees with central finite differences of the spec's loss; the
terms obey the laws of the paper (the clipped objective is a pessimistic bound, the KL estimate
is never negative, clipping the value loss never lowers it).

What the properties assume of their inputs: minibatches of `ppo_minibatches` (finite logits
`[B, A]`, an old policy within `POLICY_DRIFT` of the current one per logit, so ratios in
`[e^-2, e^2]`, clip coefficients in `[0.05, 0.5]`); they accept any implementation of the
spec's formulas, whatever its order of operations, away from the kinks named below.
`clip_fraction_matches_spec` goes onto the clip bounds themselves, where the spec decides: a
ratio exactly on `1 +- eps` is not clipped.

The implementation under test has `runtime.ppo.loss.ppo_loss`' interface: keyword tensors
(`logits [B, A]`, `actions [B]`, the rest `[B]`) and settings, returning `(total, stats)` with
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
    LAW_TOL,
    assert_close,
    round_fields,
    round_to_dtype,
    rtol_for,
)
from checked_rl.spec import ppo as spec_ppo
from checked_rl.spec.distributions import log_prob

__all__ = [
    "FD_STEP",
    "FD_TOL",
    "KINK_MARGIN",
    "LAW_TOL",
    "approx_kl_is_nonnegative",
    "clip_fraction_matches_spec",
    "clipped_surrogate_is_pessimistic",
    "clipped_value_loss_bounds_unclipped",
    "ppo_gradient_matches_finite_differences",
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
        want_total, want_stats = _spec_loss(batch)
        rtol = rtol_for(dtype)
        # Sizes of the summed terms: |r A| <= e^2 |A|, squared errors, entropies <= log A.
        scale = (
            10.0 * np.abs(batch.advantages).mean()
            + np.mean((np.abs(batch.values) + np.abs(batch.returns) + 4.0) ** 2)
            + np.log(batch.logits.shape[1])
            + np.abs(batch.logits).max()
        )
        for name, got, want in [
            ("total", total, want_total),
            *((n, getattr(stats, n), getattr(want_stats, n)) for n in _STATS),
        ]:
            got = float(got)
            if name == "clip_fraction":  # compare the counts: exact integers in every dtype
                n_samples = batch.actions.size
                assert round(got * n_samples) == round(want * n_samples), (
                    f"clip_fraction: got {got!r}, spec {want!r}"
                )
                continue
            assert_close(np.float64(got), np.float64(want), scale=scale, rtol=rtol, what=name)

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
        tensors["logits"].requires_grad_(True)
        tensors["values"].requires_grad_(True)
        total, _ = ppo_loss(**tensors, **_settings(batch))
        grad_logits, grad_values = torch.autograd.grad(
            total, [tensors["logits"], tensors["values"]]
        )
        for field, grad in (("logits", grad_logits), ("values", grad_values)):
            array = getattr(batch, field)
            for index in np.ndindex(array.shape):
                up, down = array.copy(), array.copy()
                up[index] += FD_STEP
                down[index] -= FD_STEP
                loss_up, _ = _spec_loss(batch._replace(**{field: up}))
                loss_down, _ = _spec_loss(batch._replace(**{field: down}))
                numeric = (loss_up - loss_down) / (2 * FD_STEP)
                analytic = float(grad[index])
                assert abs(analytic - numeric) <= FD_TOL * (1.0 + abs(numeric)), (
                    f"d loss / d {field}{list(index)}: autograd {analytic!r}, "
                    f"finite difference {numeric!r}"
                )

    return prop


def clipped_surrogate_is_pessimistic(
    policy_loss: Callable[..., float],
) -> Callable[[], None]:
    """The clipped loss is at least the unclipped one, `-mean(r A)` (Schulman et al. 2017,
    section 3: a lower bound on the objective), and equals `-mean(A)` when every `r = 1`.

    Assumes `ppo_minibatches`; accepts any NumPy `policy_loss` with the spec's signature.
    """

    @given(batch=ppo_minibatches())
    def prop(batch: PPOMinibatch) -> None:
        new = log_prob(batch.logits, batch.actions)
        loss = policy_loss(new, batch.old_log_probs, batch.advantages, clip_coef=batch.clip_coef)
        unclipped = -np.mean(np.exp(new - batch.old_log_probs) * batch.advantages)
        scale = 10.0 * np.abs(batch.advantages).mean()
        assert loss >= unclipped - LAW_TOL * scale, f"{loss} below the unclipped {unclipped}"
        at_one = policy_loss(new, new, batch.advantages, clip_coef=batch.clip_coef)
        assert abs(at_one + np.mean(batch.advantages)) <= LAW_TOL * scale

    return prop


def approx_kl_is_nonnegative(approx_kl: Callable[..., float]) -> Callable[[], None]:
    """The `k3` estimate `mean((r - 1) - log r)` is never negative, and 0 when every `r = 1`.

    Assumes `ppo_minibatches`; accepts any NumPy `approx_kl` with the spec's signature.
    """

    @given(batch=ppo_minibatches())
    def prop(batch: PPOMinibatch) -> None:
        new = log_prob(batch.logits, batch.actions)
        assert approx_kl(new, batch.old_log_probs) >= 0.0
        assert approx_kl(new, new) == 0.0

    return prop


def clipped_value_loss_bounds_unclipped(value_loss: Callable[..., float]) -> Callable[[], None]:
    """Clipping the value loss (a maximum of two squared errors) never lowers it, and changes
    nothing when every value stays within `eps` of its old value.

    Assumes `ppo_minibatches`; accepts any NumPy `value_loss` with the spec's signature.
    """

    @given(batch=ppo_minibatches())
    def prop(batch: PPOMinibatch) -> None:
        eps = 0.5 if batch.value_clip_coef is None else batch.value_clip_coef
        plain = value_loss(batch.values, batch.returns)
        clipped = value_loss(
            batch.values, batch.returns, old_values=batch.old_values, clip_coef=eps
        )
        assert clipped >= plain
        near = batch.values - np.clip(batch.values - batch.old_values, -eps, eps)
        unchanged = value_loss(batch.values, batch.returns, old_values=near, clip_coef=eps)
        scale = np.mean((np.abs(batch.values) + np.abs(batch.returns) + eps) ** 2)
        assert abs(unchanged - plain) <= LAW_TOL * scale, f"{unchanged} != {plain}"

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
