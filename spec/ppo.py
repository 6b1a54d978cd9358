"""The PPO loss, term by term: the reference for `runtime.ppo.loss`.

Notation, per sample `i` of a minibatch (any array shape; every mean is over all samples):

- `r_i = pi_new(a_i | s_i) / pi_old(a_i | s_i) = exp(log pi_new - log pi_old)`, the ratio,
- `A_i`: the advantage (normalised or not: the caller decides, see `spec.returns`),
- `V_i`: the critic's current value, `V_old_i` its value when the data was collected,
  `R_i`: the value target (the lambda-return).

Every loss here is a quantity to *minimise*; the entropy is a bonus, subtracted in the total.
"""

from typing import NamedTuple

import numpy as np

from checked_rl.spec.distributions import entropy, log_prob

__all__ = [
    "PPOStats",
    "approx_kl",
    "clip_fraction",
    "entropy_bonus",
    "policy_loss",
    "ppo_loss",
    "ppo_loss_from_log_probs",
    "value_loss",
]


def _same_shape(**arrays: object) -> list[np.ndarray]:
    """The arrays as float64, checked to share the shape of the first one."""
    names = list(arrays)
    out = [np.asarray(arrays[name], dtype=np.float64) for name in names]
    for name, array in zip(names[1:], out[1:], strict=True):
        if array.shape != out[0].shape:
            raise ValueError(
                f"{name} must have the shape {out[0].shape} of {names[0]}, got {array.shape}"
            )
    return out


def policy_loss(
    new_log_probs: np.ndarray,
    old_log_probs: np.ndarray,
    advantages: np.ndarray,
    *,
    clip_coef: float,
) -> float:
    """The clipped surrogate loss `-mean_i min(r_i A_i, clip(r_i, 1 - eps, 1 + eps) A_i)`.

    Source: Schulman et al. 2017, "Proximal Policy Optimization Algorithms", eq. 7 (negated).

    Worked example, eps = 0.2, A = 1: `r = 0.5` keeps `min(0.5, 0.8) = 0.5`, `r = 1.5` is
    clipped to `min(1.5, 1.2) = 1.2`; the loss is `-(0.5 + 1.2) / 2 = -0.85`.

    >>> policy_loss(np.log([0.5, 1.5]), np.zeros(2), np.ones(2), clip_coef=0.2)
    -0.85
    """
    new, old, adv = _same_shape(
        new_log_probs=new_log_probs, old_log_probs=old_log_probs, advantages=advantages
    )
    ratio = np.exp(new - old)
    clipped = np.clip(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    return float(-np.mean(np.minimum(ratio * adv, clipped * adv)))


def value_loss(
    values: np.ndarray,
    returns: np.ndarray,
    *,
    old_values: np.ndarray | None = None,
    clip_coef: float | None = None,
) -> float:
    """The value loss `0.5 * mean_i (V_i - R_i)^2`, optionally clipped around `V_old`.

    Clipped (when `clip_coef` is given, which needs `old_values`):
    `0.5 * mean_i max((V_i - R_i)^2, (V_old_i + clip(V_i - V_old_i, -eps, eps) - R_i)^2)`.

    Source: the value clipping of OpenAI Baselines' `ppo2/model.py`, with CleanRL's `ppo.py`
    factor 0.5; discussed by Engstrom et al. 2020, "Implementation Matters in Deep Policy
    Gradients", section 3.

    Worked example: `V = [3, 3]`, `R = [2, 4]` gives `0.5 * (1 + 1) / 2 = 0.5`. Clipped with
    `V_old = [1, 1]`, eps = 0.5, the clipped values are `[1.5, 1.5]`, squared errors
    `[0.25, 6.25]`, maxima `[1, 6.25]`, so `0.5 * 7.25 / 2 = 1.8125`.

    >>> value_loss(np.array([3.0, 3.0]), np.array([2.0, 4.0]))
    0.5
    >>> value_loss(np.array([3.0, 3.0]), np.array([2.0, 4.0]),
    ...            old_values=np.array([1.0, 1.0]), clip_coef=0.5)
    1.8125
    """
    v, ret = _same_shape(values=values, returns=returns)
    squared = (v - ret) ** 2
    if clip_coef is None:
        return float(0.5 * np.mean(squared))
    if old_values is None:
        raise ValueError("value_loss: clip_coef needs old_values, got None")
    (v_old,) = _same_shape(values=values, old_values=old_values)[1:]
    v_clipped = v_old + np.clip(v - v_old, -clip_coef, clip_coef)
    return float(0.5 * np.mean(np.maximum(squared, (v_clipped - ret) ** 2)))


def entropy_bonus(logits: np.ndarray) -> float:
    """The mean entropy of the policies `[..., A]`: `mean_i H(pi(. | s_i))`.

    Source: Schulman et al. 2017, eq. 9 (the `c_2 S[pi](s_t)` term).

    >>> round(entropy_bonus(np.array([[0.0, 0.0], [0.0, -np.inf]])), 6)  # (log 2 + 0) / 2
    0.346574
    """
    return float(np.mean(entropy(logits)))


def approx_kl(new_log_probs: np.ndarray, old_log_probs: np.ndarray) -> float:
    """An estimate of `KL(pi_old || pi_new)`: `mean_i ((r_i - 1) - log r_i)`.

    This is the unbiased, never negative estimator `k3` from samples of `pi_old` (J. Schulman,
    "Approximating KL Divergence", 2020), as logged by CleanRL's `ppo.py`.

    Worked example: `r = 0.5` gives `-0.5 + log 2 = 0.193147`, `r = 1.5` gives
    `0.5 - log 1.5 = 0.094535`; the mean is 0.143841.

    >>> round(approx_kl(np.log([0.5, 1.5]), np.zeros(2)), 6)
    0.143841
    """
    new, old = _same_shape(new_log_probs=new_log_probs, old_log_probs=old_log_probs)
    log_ratio = new - old
    return float(np.mean(np.expm1(log_ratio) - log_ratio))


def clip_fraction(
    new_log_probs: np.ndarray, old_log_probs: np.ndarray, *, clip_coef: float
) -> float:
    """The fraction of samples whose ratio the clip moves: `mean_i [r_i outside 1 +- eps]`.

    That is `r_i < 1 - eps or r_i > 1 + eps`.
    The samples counted are exactly those whose ratio `policy_loss`' `clip(r, 1 - eps, 1 + eps)`
    changes, with the same bounds `1 - eps` and `1 + eps` (computed in the ratio's dtype): a
    ratio exactly on a bound, `|r - 1| = eps`, is inside the closed clip range and is not
    counted. (CleanRL's `((ratio - 1).abs() > clip_coef)` decides the same way on the bound,
    up to the rounding of `r - 1` against that of `1 + eps`.)

    Source: the `clipfrac` statistic of OpenAI Baselines' `ppo2` and CleanRL's `ppo.py`.

    >>> clip_fraction(np.log([0.5, 1.1, 1.5, 1.0]), np.zeros(4), clip_coef=0.2)
    0.5

    On the bounds (`r = 1 = 1 +- 0` with `eps = 0`, and `r = 1.5 = 1 + 0.5` exactly):

    >>> clip_fraction(np.zeros(2), np.zeros(2), clip_coef=0.0)
    0.0
    >>> clip_fraction(np.log([1.5]), np.zeros(1), clip_coef=0.5)
    0.0
    """
    new, old = _same_shape(new_log_probs=new_log_probs, old_log_probs=old_log_probs)
    ratio = np.exp(new - old)
    return float(np.mean((ratio < 1.0 - clip_coef) | (ratio > 1.0 + clip_coef)))


class PPOStats(NamedTuple):
    """The terms of one PPO loss evaluation, for logging."""

    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float


def ppo_loss(
    *,
    logits: np.ndarray,
    actions: np.ndarray,
    old_log_probs: np.ndarray,
    advantages: np.ndarray,
    values: np.ndarray,
    returns: np.ndarray,
    old_values: np.ndarray | None = None,
    clip_coef: float = 0.2,
    value_clip_coef: float | None = None,
    value_coef: float = 0.5,
    entropy_coef: float = 0.01,
) -> tuple[float, PPOStats]:
    """The total PPO loss `L = L_clip + value_coef * L_V - entropy_coef * H`, and its terms.

    Arguments: `logits [..., A]` of the current policy, the taken `actions [...]`, their
    `old_log_probs [...]` under the policy that collected them, `advantages`, the current
    `values`, the value targets `returns` and, for value clipping (`value_clip_coef` not None),
    the collection-time `old_values`, all `[...]`. The defaults are CleanRL's `ppo.py`
    (clip 0.2, value coefficient 0.5, entropy coefficient 0.01, no value clipping here).

    Source: Schulman et al. 2017, eq. 9, with the terms of `policy_loss`, `value_loss` and
    `entropy_bonus`.

    Worked example, two actions with equal logits (`H = log 2`, log-probs `log 1/2`), old
    log-probs `log 1/2` (so `r = 1`, KL 0), advantages `[1, -1]`: `L_clip = -(1 - 1) / 2 = 0`;
    `V = [1, 1]`, `R = [0, 2]`: `L_V = 0.5`; so `L = 0 + 0.5 * 0.5 - 0.01 * 0.693147`.

    >>> total, stats = ppo_loss(logits=np.zeros((2, 2)), actions=np.array([0, 1]),
    ...                         old_log_probs=np.log([0.5, 0.5]), advantages=np.array([1.0, -1.0]),
    ...                         values=np.ones(2), returns=np.array([0.0, 2.0]))
    >>> round(total, 6), stats.value_loss, round(stats.entropy, 6), stats.clip_fraction
    (0.243069, 0.5, 0.693147, 0.0)
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


def ppo_loss_from_log_probs(
    *,
    new_log_probs: np.ndarray,
    entropies: np.ndarray,
    old_log_probs: np.ndarray,
    advantages: np.ndarray,
    values: np.ndarray,
    returns: np.ndarray,
    old_values: np.ndarray | None = None,
    clip_coef: float = 0.2,
    value_clip_coef: float | None = None,
    value_coef: float = 0.5,
    entropy_coef: float = 0.01,
) -> tuple[float, PPOStats]:
    """The PPO loss of `ppo_loss`, whatever the distribution: from the current policy's
    `new_log_probs [...]` of the taken actions and its per-sample `entropies [...]`.

    This is the one definition: `ppo_loss` (categorical logits) computes its log-probabilities
    and entropies with `spec.distributions` and calls it; a Gaussian policy passes those of
    `spec.gaussian` (`log_prob(mean, log_std, actions)`, `entropy(mean, log_std)`). The other
    arguments and the defaults (CleanRL's) are `ppo_loss`'s; the entropy term is the mean of
    `entropies`.

    Worked example, the numbers of `ppo_loss`' example given as log-probabilities and
    entropies; then a one-dimensional unit Gaussian at its mean (log-prob and entropy
    `-0.918939` and `1.418939`, its own old policy, so `r = 1`):

    >>> total, stats = ppo_loss_from_log_probs(
    ...     new_log_probs=np.log([0.5, 0.5]), entropies=np.full(2, np.log(2.0)),
    ...     old_log_probs=np.log([0.5, 0.5]), advantages=np.array([1.0, -1.0]),
    ...     values=np.ones(2), returns=np.array([0.0, 2.0]))
    >>> round(total, 6), stats.value_loss, round(stats.entropy, 6)
    (0.243069, 0.5, 0.693147)
    >>> total, stats = ppo_loss_from_log_probs(
    ...     new_log_probs=np.array([-0.918939]), entropies=np.array([1.418939]),
    ...     old_log_probs=np.array([-0.918939]), advantages=np.array([2.0]),
    ...     values=np.zeros(1), returns=np.zeros(1))
    >>> round(total, 6), stats.policy_loss  # -2 - 0.01 * 1.418939
    (-2.014189, -2.0)
    """
    (new_log_probs, entropies) = _same_shape(new_log_probs=new_log_probs, entropies=entropies)
    terms = PPOStats(
        policy_loss=policy_loss(new_log_probs, old_log_probs, advantages, clip_coef=clip_coef),
        value_loss=value_loss(values, returns, old_values=old_values, clip_coef=value_clip_coef),
        entropy=float(np.mean(entropies)),
        approx_kl=approx_kl(new_log_probs, old_log_probs),
        clip_fraction=clip_fraction(new_log_probs, old_log_probs, clip_coef=clip_coef),
    )
    total = terms.policy_loss + value_coef * terms.value_loss - entropy_coef * terms.entropy
    return total, terms
