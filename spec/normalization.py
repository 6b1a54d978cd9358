"""Running normalisation of observations and rewards: the reference semantics.

Stable-Baselines3's `VecNormalize` (and OpenAI Baselines' before it) keeps running moments of
the observations and of a per-environment discounted return, and feeds the learner

    observation:  clip((x - mean) / sqrt(var + eps), -clip_obs, clip_obs)
    reward:       clip(r / sqrt(var_R + eps), -clip_reward, clip_reward)

The defaults adopted here are SB3's (`VecNormalize(clip_obs=10.0, clip_reward=10.0,
gamma=0.99, epsilon=1e-8)`, its `RunningMeanStd(epsilon=1e-4)`): `CLIP = 10`, `EPSILON =
1e-8`, and running moments that start at mean 0, variance 1 and a pseudo-count `INITIAL_COUNT
= 1e-4`, so that the first batch all but replaces the prior while no division is by zero.

**Moments of a stream of batches.** A batch `x` of `B` rows has the moments `(mean, var, B)`
with the population variance (divided by `B`, not `B - 1`). Two sets of moments are merged
with the parallel formula of Chan, Golub & LeVeque (1979; "Updating formulae and a pairwise
algorithm for computing sample variances"), with `n = n_a + n_b` and `d = mean_b - mean_a`:

    mean = mean_a + d * n_b / n
    var  = (var_a * n_a + var_b * n_b + d^2 * n_a * n_b / n) / n

so that merging the moments of two batches gives those of their concatenation, and the
order of the batches changes the result by rounding only.

**The reward scaler.** Each environment keeps a discounted return `R <- gamma * R + r`; its
running variance `var_R` (moments over all environments and steps) scales the reward. No mean
is subtracted: the sign of a reward is kept. `R` restarts at 0 after every step where the
episode ended, `terminated` **or** `truncated`: `R` estimates the return of the current
episode, and after either flag the environment starts a new episode (a truncated episode's
state still has a value, but the next reward belongs to another episode). Resetting on
`terminated` only would add the next episode's rewards to a cut episode's return, and its
variance would grow with the time limit instead of with the rewards. SB3 resets on its `dones`,
which are `terminated or truncated`, as here.
"""

from typing import NamedTuple

import numpy as np

__all__ = [
    "CLIP",
    "EPSILON",
    "INITIAL_COUNT",
    "Moments",
    "RewardScalerState",
    "batch_moments",
    "initial_moments",
    "initial_reward_scaler",
    "merge",
    "normalize",
    "scale_rewards",
    "update",
]

CLIP = 10.0
"""Normalised observations and scaled rewards are clipped to `[-CLIP, CLIP]` (SB3's default)."""

EPSILON = 1e-8
"""Added to the variance inside the square root (SB3's `VecNormalize(epsilon=1e-8)`)."""

INITIAL_COUNT = 1e-4
"""Pseudo-count of the prior moments (mean 0, variance 1): SB3's `RunningMeanStd(epsilon=1e-4)`."""


class Moments(NamedTuple):
    """Mean and population variance (float64 arrays of the sample shape) of `count` samples."""

    mean: np.ndarray
    var: np.ndarray
    count: float


class RewardScalerState(NamedTuple):
    """The moments of the discounted returns (shape `()`) and each environment's return `[N]`."""

    moments: Moments
    returns: np.ndarray


def initial_moments(shape: tuple[int, ...], count: float = INITIAL_COUNT) -> Moments:
    """The prior: mean 0, variance 1, pseudo-count `count`.

    >>> initial_moments((2,))
    Moments(mean=array([0., 0.]), var=array([1., 1.]), count=0.0001)
    """
    return Moments(np.zeros(shape), np.ones(shape), float(count))


def batch_moments(x: np.ndarray) -> Moments:
    """The moments of the rows of `x` `[B, *S]`: mean, population variance, `B`.

    >>> batch_moments(np.array([[1.0], [3.0]]))
    Moments(mean=array([2.]), var=array([1.]), count=2.0)
    """
    x = np.asarray(x, dtype=np.float64)
    return Moments(x.mean(axis=0), x.var(axis=0), float(x.shape[0]))


def merge(a: Moments, b: Moments) -> Moments:
    """The moments of the union of two sets of samples (Chan, Golub & LeVeque 1979).

    Merging `[1, 3]` (mean 2, variance 1) with `[5]` (mean 5, variance 0):
    `d = 3`, `n = 3`, mean `2 + 3 * 1/3 = 3`, variance `(1*2 + 0*1 + 9 * 2*1/3) / 3 = 8/3`,
    the population variance of `[1, 3, 5]`:

    >>> m = merge(batch_moments(np.array([1.0, 3.0])), batch_moments(np.array([5.0])))
    >>> float(m.mean), round(float(m.var), 6), m.count
    (3.0, 2.666667, 3.0)
    """
    count = a.count + b.count
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / count)
    m2 = a.var * a.count + b.var * b.count + delta**2 * (a.count * b.count / count)
    return Moments(mean, m2 / count, count)


def update(moments: Moments, x: np.ndarray) -> Moments:
    """`moments` after the batch `x` `[B, *S]`: `merge(moments, batch_moments(x))`.

    From the prior, one batch `[0, 2]` gives mean `2 * 2 / (2 + 1e-4)` and variance close to 1:

    >>> m = update(initial_moments(()), np.array([0.0, 2.0]))
    >>> round(float(m.mean), 4), round(float(m.var), 4), m.count
    (1.0, 1.0, 2.0001)
    """
    return merge(moments, batch_moments(x))


def normalize(
    x: np.ndarray, moments: Moments, clip: float = CLIP, epsilon: float = EPSILON
) -> np.ndarray:
    """`clip((x - mean) / sqrt(var + epsilon), -clip, clip)` over the trailing sample axes.

    With mean 1 and variance 4, `x = 5` is 2 standard deviations up, and `x = 100` is clipped:

    >>> m = Moments(np.array([1.0]), np.array([4.0]), 10.0)
    >>> normalize(np.array([[5.0], [100.0], [-1.0]]), m, epsilon=0.0).ravel().tolist()
    [2.0, 10.0, -1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    return np.clip((x - moments.mean) / np.sqrt(moments.var + epsilon), -clip, clip)


def initial_reward_scaler(num_envs: int, count: float = INITIAL_COUNT) -> RewardScalerState:
    """Prior moments of the returns and `R = 0` in each of the `num_envs` environments."""
    return RewardScalerState(initial_moments((), count), np.zeros(num_envs))


def scale_rewards(
    state: RewardScalerState,
    rewards: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    clip: float = CLIP,
    epsilon: float = EPSILON,
    frozen: bool = False,
) -> tuple[np.ndarray, RewardScalerState]:
    """Scale a stream of rewards `[T, N]` step by step; the scaled rewards and the new state.

    At each step `t`, in this order (SB3's `VecNormalize.step_wait`):

        R       <- gamma * R + r_t                      (each environment)
        moments <- update(moments, R)                   (skipped when frozen)
        out_t    = clip(r_t / sqrt(var_R + epsilon), -clip, clip)
        R       <- 0 where terminated_t or truncated_t

    Two environments, `gamma = 1`, the first episode ending at step 0 (truncated) and the
    prior's count made negligible: step 0 sees returns `[1, 1]` (variance 0), step 1 returns
    `[3, 4]` after the reset of environment 0; their running variance over the four
    returns `[1, 1, 3, 4]` is `1.6875`, so the rewards `[3, 3]` become `3 / 1.299 = 2.309`:

    >>> state = initial_reward_scaler(2, count=1e-12)
    >>> out, state = scale_rewards(
    ...     state, np.array([[1.0, 1.0], [3.0, 3.0]]), np.zeros((2, 2), bool),
    ...     np.array([[True, False], [False, False]]), gamma=1.0)
    >>> np.round(out, 3).tolist(), state.returns.tolist(), round(float(state.moments.var), 4)
    ([[10.0, 10.0], [2.309, 2.309]], [3.0, 4.0], 1.6875)

    Step 0 is clipped: after one step the variance of the returns is near 0 (here `1e-12`),
    and `1 / sqrt(1e-12 + 1e-8)` is about `1e4`.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    moments, returns = state.moments, np.array(state.returns, dtype=np.float64)
    out = np.empty_like(rewards)
    for t in range(rewards.shape[0]):
        returns = gamma * returns + rewards[t]
        if not frozen:
            moments = update(moments, returns)
        out[t] = np.clip(rewards[t] / np.sqrt(moments.var + epsilon), -clip, clip)
        returns = np.where(np.asarray(terminated[t]) | np.asarray(truncated[t]), 0.0, returns)
    return out, RewardScalerState(moments, returns)
