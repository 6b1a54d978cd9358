"""Diagonal Gaussian policies over continuous actions: the reference for `runtime.gaussian`.

A policy head outputs a mean `mu[..., a]` and a log standard deviation `s[..., a]` for each
action dimension `a = 0 .. A-1`; the policy is the product of independent normals
`pi(x) = prod_a N(x_a; mu_a, sigma_a^2)`, `sigma_a = exp(s_a)`. Parametrising by `log_std`
keeps `sigma > 0` without a constraint (Schulman et al. 2015, TRPO, appendix D; CleanRL's
`ppo_continuous_action.py`). Every function works on a batch `[..., A]` at once; the result of
`log_prob`, `entropy` and `kl_divergence` has the batch shape `[...]` (one number per
distribution: a sum over the `A` dimensions).

Broadcasting: `mean` has the full shape `[..., A]`; `log_std` has any shape that broadcasts to
it by NumPy's rules without enlarging it: `[A]` (a state-independent log-std, one parameter per
dimension, shared by the whole batch, as CleanRL's `actor_logstd`), or the mean's own shape (a
state-dependent one), or anything in between (`[1, A]`, `[T, 1, A]`). A `log_std` that would
add axes or lengths to the mean's shape is refused, so the batch shape is always the mean's.
Actions and standard normals `z` have exactly the mean's shape. All inputs must be finite.

Everything is computed in float64; `runtime.gaussian` computes the same formulas in the inputs'
dtype, and `properties.gaussian` compares the two within the named tolerances of
`properties.tolerances`.
"""

import numpy as np

__all__ = ["HALF_LOG_2PI", "entropy", "kl_divergence", "log_prob", "mode", "sample"]

HALF_LOG_2PI = 0.5 * float(np.log(2.0 * np.pi))
"""`0.5 * log(2 pi) = 0.918939...`, the normalising constant of a standard normal's log-density
(one per action dimension)."""


def _finite(name: str, value: object) -> np.ndarray:
    """`value` as a float64 array of at least one axis and a non-empty last axis, all finite."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name} must have shape [..., A] with A >= 1, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    return array


def _params(mean: object, log_std: object, suffix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """`mean` and `log_std` checked: finite, and `log_std` broadcasting to `mean`'s shape."""
    mu = _finite(f"mean{suffix}", mean)
    s = _finite(f"log_std{suffix}", log_std)
    try:
        shape = np.broadcast_shapes(mu.shape, s.shape)
    except ValueError:
        shape = None
    if shape != mu.shape:
        raise ValueError(
            f"log_std{suffix} of shape {s.shape} must broadcast to mean{suffix}'s shape "
            f"{mu.shape} (for example [A] or the mean's own shape)"
        )
    return mu, s


def _like_mean(name: str, value: object, mean: np.ndarray) -> np.ndarray:
    """`value` (actions or normals) checked to be finite and of exactly `mean`'s shape."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != mean.shape:
        raise ValueError(f"{name} must have the mean's shape {mean.shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got NaN or infinity")
    return array


def log_prob(mean: np.ndarray, log_std: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """`log pi(x) = sum_a (-0.5 * ((x_a - mu_a) / sigma_a)^2 - s_a - 0.5 * log(2 pi))`.

    The standardised distance is computed as `(x - mu) * exp(-s)`, a product rather than a
    division by `exp(s)`, and the constant `0.5 * log(2 pi)` counts once per dimension.

    Worked example, `mu = [0, 0]`, `s = [0, log 2]`, `x = [1, 2]`: each dimension is one
    standard deviation away, so `2 * (-0.5 - 0.918939) - log 2 = -3.531024`.

    >>> round(float(log_prob(np.zeros(2), np.array([0.0, np.log(2.0)]), np.array([1.0, 2.0]))), 6)
    -3.531024

    A state-independent `log_std [A]` broadcasts against a batch of means `[B, A]`:

    >>> log_prob(np.array([[0.0], [1.0]]), np.zeros(1), np.zeros((2, 1))).round(6)
    array([-0.918939, -1.418939])
    """
    mu, s = _params(mean, log_std)
    x = _like_mean("actions", actions, mu)
    z = (x - mu) * np.exp(-s)
    return np.sum(-0.5 * z * z - s - HALF_LOG_2PI, axis=-1)


def entropy(mean: np.ndarray, log_std: np.ndarray) -> np.ndarray:
    """`H(pi) = sum_a (s_a + 0.5 + 0.5 * log(2 pi)) = sum_a (s_a + 0.5 * log(2 pi e))`.

    It does not depend on the mean's values: `mean` gives the batch shape, so that a
    state-independent `log_std [A]` yields one entropy per sample, as the PPO loss's
    per-sample entropies (`spec.ppo.ppo_loss_from_log_probs`) expect. Unlike a categorical
    entropy it can be negative (`sigma < 1 / sqrt(2 pi e) = 0.2420` in one dimension).
    Source: Cover & Thomas, "Elements of Information Theory", theorem 8.4.1.

    >>> entropy(np.zeros((2, 1)), np.zeros(1)).round(6)  # 0.5 * log(2 pi e) per sample
    array([1.418939, 1.418939])
    >>> round(float(entropy(np.zeros(3), np.array([0.0, -1.0, 1.0]))), 6)  # 3 * 1.418939
    4.256816
    """
    mu, s = _params(mean, log_std)
    per_dimension = np.broadcast_to(s, mu.shape) + (0.5 + HALF_LOG_2PI)
    return np.sum(per_dimension, axis=-1)


def sample(mean: np.ndarray, log_std: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The action `x = mu + exp(s) * z` for given standard normals `z` (the reparametrisation
    of Kingma & Welling 2014): the continuous counterpart of `spec.distributions.sample`'s
    inverse CDF at given uniforms. `z` has the mean's shape.

    >>> sample(np.array([1.0, -1.0]), np.array([0.0, np.log(2.0)]), np.array([0.5, 0.5]))
    array([1.5, 0. ])
    """
    mu, s = _params(mean, log_std)
    normals = _like_mean("z", z, mu)
    return mu + np.exp(s) * normals


def mode(mean: np.ndarray, log_std: np.ndarray) -> np.ndarray:
    """The most probable action: the mean itself (the greedy action of evaluation).

    `log_std` is checked like everywhere else, and does not change the result.

    >>> mode(np.array([[0.5, -2.0]]), np.zeros(2))
    array([[ 0.5, -2. ]])
    """
    mu, _ = _params(mean, log_std)
    return mu.copy()


def kl_divergence(
    mean_p: np.ndarray, log_std_p: np.ndarray, mean_q: np.ndarray, log_std_q: np.ndarray
) -> np.ndarray:
    """`KL(p || q) = sum_a (s_q - s_p + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2)`.

    Not symmetric: `p` is the distribution the expectation is over (in PPO, the old policy that
    collected the data, as `spec.ppo.approx_kl` estimates). Computed, with `d = s_p - s_q`, as
    `sum_a (0.5 * (expm1(2 d) - 2 d) + 0.5 * ((mu_p - mu_q) * exp(-s_q))^2)`: both terms are
    never negative, and `expm1` keeps the first accurate where `d` is small (where
    `exp(2 d) - 1 - 2 d` would cancel to zero). Both means have the same shape; each `log_std`
    broadcasts to it. Source: the closed form of the KL divergence between two univariate
    normals, summed over the dimensions (the divergence of independent products is the sum of
    the divergences; Cover & Thomas, "Elements of Information Theory", chapter 2).

    Worked examples: `N(0, 1)` to `N(1, 1)` is `1 / 2`; `N(0, 1)` to `N(0, 2^2)` is
    `log 2 + 1/8 - 1/2 = 0.318147`, and the other way round `-log 2 + 2 - 1/2 = 0.806853`.

    >>> float(kl_divergence(np.zeros(1), np.zeros(1), np.ones(1), np.zeros(1)))
    0.5
    >>> round(float(kl_divergence(np.zeros(1), np.zeros(1), np.zeros(1), np.log([2.0]))), 6)
    0.318147
    >>> round(float(kl_divergence(np.zeros(1), np.log([2.0]), np.zeros(1), np.zeros(1))), 6)
    0.806853
    """
    mu_p, s_p = _params(mean_p, log_std_p, "_p")
    mu_q, s_q = _params(mean_q, log_std_q, "_q")
    if mu_q.shape != mu_p.shape:
        raise ValueError(f"mean_q must have mean_p's shape {mu_p.shape}, got {mu_q.shape}")
    d = np.broadcast_to(s_p - s_q, mu_p.shape)
    distance = (mu_p - mu_q) * np.exp(-s_q)
    return np.sum(0.5 * (np.expm1(2.0 * d) - 2.0 * d) + 0.5 * distance * distance, axis=-1)
