"""Categorical policies over discrete actions, from logits: the reference for
`runtime.distributions`.

A policy head outputs logits `z[..., a]` for actions `a = 0 .. A-1`; the policy is
`pi(a) = exp(z_a) / sum_b exp(z_b)` along the last axis. Logits are finite, or `-inf` for an
action that is impossible; every distribution needs at least one finite logit. Every function
works on a batch `[..., A]` of distributions at once, along the last axis.
"""

import numpy as np

__all__ = ["entropy", "greedy", "log_prob", "log_softmax", "sample", "softmax"]


def _logits(logits: object) -> np.ndarray:
    """`logits` as a float64 array `[..., A]`, checked (A >= 1, no NaN or +inf, a finite entry)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"logits must have shape [..., A] with A >= 1, got {z.shape}")
    if np.any(np.isnan(z)) or np.any(z == np.inf):
        raise ValueError("logits must be finite or -inf, got NaN or +inf")
    if np.any(np.all(z == -np.inf, axis=-1)):
        raise ValueError("every distribution needs a finite logit, got a row of -inf only")
    return z


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """The log-probabilities `log pi(a) = z_a - m - log(sum_b exp(z_b - m))`, `m = max_b z_b`.

    Subtracting the largest logit `m` first keeps every `exp` in `(0, 1]`, so nothing
    overflows; an impossible action (`z_a = -inf`) gets `-inf`.

    >>> log_softmax(np.array([0.0, 0.0])).round(6)  # log(1/2) = -0.693147...
    array([-0.693147, -0.693147])
    """
    z = _logits(logits)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """The probabilities `pi(a) = exp(log_softmax(z)_a)`.

    >>> softmax(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    """
    return np.exp(log_softmax(logits))


def log_prob(logits: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """`log pi(a)` of the given actions: `actions` has the batch shape `[...]` of `logits`.

    >>> log_prob(np.array([[0.0, np.log(3.0)]]), np.array([1])).round(6)  # log(3/4) = -0.287682
    array([-0.287682])
    """
    logp = log_softmax(logits)
    a = np.asarray(actions)
    if a.shape != logp.shape[:-1] or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"actions must be integers of shape {logp.shape[:-1]} (logits' batch shape), "
            f"got {a.dtype} {a.shape}"
        )
    if np.any(a < 0) or np.any(a >= logp.shape[-1]):
        raise ValueError(f"actions must lie in [0, {logp.shape[-1]}), got {a.min()}..{a.max()}")
    return np.take_along_axis(logp, a[..., None], axis=-1)[..., 0]


def entropy(logits: np.ndarray) -> np.ndarray:
    """The entropy `H(pi) = -sum_a pi(a) log pi(a)`, with `0 log 0 = 0` for impossible actions.

    Source: Shannon 1948; the entropy bonus of Mnih et al. 2016 and Schulman et al. 2017.

    A fair coin has entropy `log 2 = 0.693147`, a sure action 0:

    >>> entropy(np.array([[0.0, 0.0], [0.0, -np.inf]])).round(6)
    array([0.693147, 0.      ])
    """
    logp = log_softmax(logits)
    p = np.exp(logp)
    return 0.0 - (p * np.where(p > 0.0, logp, 0.0)).sum(axis=-1)


def greedy(logits: np.ndarray) -> np.ndarray:
    """The most probable action; on ties, the smallest index among the largest logits.

    >>> greedy(np.array([[1.0, 3.0, 3.0], [0.0, -1.0, -np.inf]]))
    array([1, 0])
    """
    return np.argmax(_logits(logits), axis=-1)


def sample(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw actions by the inverse CDF of `pi` at uniform numbers `u` in `[0, 1)`.

    With the weights `w_a = exp(z_a - max_b z_b)` (so the largest is 1), their running sums
    `W_a = w_0 + ... + w_a` and the total `W = W_{A-1}`, the action is the smallest possible
    `a` (`w_a > 0`) with `u * W < W_a`. So action `a` is drawn for `u` in
    `[W_{a-1} / W, W_a / W)`, an interval of length `pi(a)`: an impossible action (`w_a = 0`)
    has an empty interval and is never drawn, and a `u` on a boundary goes to the action above
    it. `u` has the batch shape `[...]` of `logits` (any number of axes).

    Such an action always exists, so there is no fallback: in float64, `u <= 1 - 2^-53` and
    `W >= 1` round `u * W` to a number below `W` (its distance to `W`, at least `W * 2^-53`, is
    at least half the spacing of the floats just below `W`), and the last possible action has
    `W_a = W`. (Requiring `w_a > 0` changes nothing in exact arithmetic, where the smallest `a`
    with `u * W < W_a` has `W_{a-1} <= u * W`, hence `w_a > 0`; it makes the rule hold even
    where a parallel running sum is not monotone.)

    Worked example: logits `[0, log 3]` give `pi = [1/4, 3/4]`, so `u < 0.25` draws 0.

    >>> sample(np.array([[0.0, np.log(3.0)]] * 3), np.array([0.0, 0.2, 0.25]))
    array([0, 0, 1])
    """
    z = _logits(logits)
    uniform = np.asarray(u, dtype=np.float64)
    if uniform.shape != z.shape[:-1]:
        raise ValueError(
            f"u must have shape {z.shape[:-1]} (logits' batch shape), got {uniform.shape}"
        )
    if np.any(uniform < 0.0) or np.any(uniform >= 1.0):
        raise ValueError("u must lie in [0, 1)")
    weights = np.exp(z - z.max(axis=-1, keepdims=True))
    actions = np.zeros(uniform.shape, dtype=np.int64)
    for index in np.ndindex(uniform.shape):
        running = np.cumsum(weights[index])
        above = (uniform[index] * running[-1] < running) & (weights[index] > 0.0)
        actions[index] = np.flatnonzero(above)[0]
    return actions
