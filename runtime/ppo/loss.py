"""The PPO loss on tensors: the differentiable twin of `spec.ppo`.

Every per-sample argument has the same batch shape `*batch` (a flat minibatch `[M]` or a
rollout `[T, N]`); `logits` adds the action axis `A`. Every mean is over all samples. The losses
are to be minimised; the statistics come back detached, as 0-dimensional tensors on the
device of the inputs (no host synchronisation: call `.item()` when logging).
"""

from typing import NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor

from checked_rl.runtime.distributions import Actions, Logits, PerSample, entropy, log_prob
from checked_rl.runtime.shapes import typechecked

__all__ = [
    "PPOStats",
    "Scalar",
    "approx_kl",
    "clip_fraction",
    "entropy_bonus",
    "policy_loss",
    "ppo_loss",
    "ppo_loss_from_log_probs",
    "value_loss",
]

Scalar = Float[Tensor, ""]


@typechecked
def policy_loss(
    new_log_probs: PerSample, old_log_probs: PerSample, advantages: PerSample, *, clip_coef: float
) -> Scalar:
    """`-mean(min(r A, clip(r, 1 - eps, 1 + eps) A))`, `r = exp(new - old)`.

    Twin of `spec.ppo.policy_loss` (Schulman et al. 2017, eq. 7, negated).
    """
    ratio = torch.exp(new_log_probs - old_log_probs)
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    return -torch.minimum(ratio * advantages, clipped * advantages).mean()


@typechecked
def value_loss(
    values: PerSample,
    returns: PerSample,
    *,
    old_values: PerSample | None = None,
    clip_coef: float | None = None,
) -> Scalar:
    """`0.5 * mean((V - R)^2)`, or its clipped form around `old_values` when `clip_coef` is set.

    Twin of `spec.ppo.value_loss` (OpenAI Baselines' `ppo2` value clipping, CleanRL's 0.5).
    """
    squared = (values - returns) ** 2
    if clip_coef is None:
        return 0.5 * squared.mean()
    if old_values is None:
        raise ValueError("value_loss: clip_coef needs old_values, got None")
    clipped = old_values + torch.clamp(values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.maximum(squared, (clipped - returns) ** 2).mean()


@typechecked
def entropy_bonus(logits: Logits) -> Scalar:
    """The mean entropy of the policies; twin of `spec.ppo.entropy_bonus`."""
    return entropy(logits).mean()


@typechecked
def approx_kl(new_log_probs: PerSample, old_log_probs: PerSample) -> Scalar:
    """`mean((r - 1) - log r)`, Schulman's `k3` estimate of `KL(pi_old || pi_new)`.

    Twin of `spec.ppo.approx_kl`.
    """
    log_ratio = new_log_probs - old_log_probs
    return (torch.expm1(log_ratio) - log_ratio).mean()


@typechecked
def clip_fraction(
    new_log_probs: PerSample, old_log_probs: PerSample, *, clip_coef: float
) -> Scalar:
    """The fraction of samples with `r < 1 - clip_coef` or `r > 1 + clip_coef`, the ratios that
    `policy_loss`' clamp moves; a ratio on a bound is not counted. Twin of
    `spec.ppo.clip_fraction`; the bounds are compared in the ratio's dtype, as the clamp's."""
    ratio = torch.exp(new_log_probs - old_log_probs)
    outside = (ratio < 1.0 - clip_coef) | (ratio > 1.0 + clip_coef)
    return outside.to(ratio.dtype).mean()


class PPOStats(NamedTuple):
    """The detached terms of one PPO loss evaluation (0-dimensional tensors), for logging."""

    policy_loss: Tensor
    value_loss: Tensor
    entropy: Tensor
    approx_kl: Tensor
    clip_fraction: Tensor


@typechecked
def ppo_loss(
    *,
    logits: Logits,
    actions: Actions,
    old_log_probs: PerSample,
    advantages: PerSample,
    values: PerSample,
    returns: PerSample,
    old_values: PerSample | None = None,
    clip_coef: float = 0.2,
    value_clip_coef: float | None = None,
    value_coef: float = 0.5,
    entropy_coef: float = 0.01,
) -> tuple[Scalar, PPOStats]:
    """The total `L_clip + value_coef * L_V - entropy_coef * H` and its detached terms.

    Twin of `spec.ppo.ppo_loss` (Schulman et al. 2017, eq. 9; defaults from CleanRL's
    `ppo.py`). `logits [*batch, A]` and `values [*batch]` carry the gradient; `actions`,
    `old_log_probs`, `advantages`, `returns` and `old_values` are data (detach them first if
    they come from a graph). Value clipping is on when `value_clip_coef` is not None, and then
    needs `old_values`. The categorical log-probabilities and entropies go to
    `ppo_loss_from_log_probs`, the one definition of the loss.
    """
    return ppo_loss_from_log_probs(
        new_log_probs=log_prob(logits, actions),
        entropies=entropy(logits),
        old_log_probs=old_log_probs,
        advantages=advantages,
        values=values,
        returns=returns,
        old_values=old_values,
        clip_coef=clip_coef,
        value_clip_coef=value_clip_coef,
        value_coef=value_coef,
        entropy_coef=entropy_coef,
    )


@typechecked
def ppo_loss_from_log_probs(
    *,
    new_log_probs: PerSample,
    entropies: PerSample,
    old_log_probs: PerSample,
    advantages: PerSample,
    values: PerSample,
    returns: PerSample,
    old_values: PerSample | None = None,
    clip_coef: float = 0.2,
    value_clip_coef: float | None = None,
    value_coef: float = 0.5,
    entropy_coef: float = 0.01,
) -> tuple[Scalar, PPOStats]:
    """`ppo_loss` whatever the distribution: from the current policy's `new_log_probs` of the
    taken actions and its `entropies`, both `[*batch]` and carrying the gradient.

    Twin of `spec.ppo.ppo_loss_from_log_probs`: a categorical policy passes
    `runtime.distributions`' log-probabilities and entropies (that is `ppo_loss`), a Gaussian
    one `runtime.gaussian`'s. The other arguments and the defaults are `ppo_loss`'s.
    """
    policy = policy_loss(new_log_probs, old_log_probs, advantages, clip_coef=clip_coef)
    value = value_loss(values, returns, old_values=old_values, clip_coef=value_clip_coef)
    bonus = entropies.mean()
    total = policy + value_coef * value - entropy_coef * bonus
    with torch.no_grad():
        stats = PPOStats(
            policy_loss=policy.detach(),
            value_loss=value.detach(),
            entropy=bonus.detach(),
            approx_kl=approx_kl(new_log_probs, old_log_probs),
            clip_fraction=clip_fraction(new_log_probs, old_log_probs, clip_coef=clip_coef),
        )
    return total, stats
