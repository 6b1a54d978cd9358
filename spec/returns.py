"""Returns and advantages over one environment's time axis: the reference for `runtime.returns`.

Every function here takes 1-D arrays indexed by time `t = 0 .. T-1` for a single environment:

- `rewards[t]`: the reward of step `t`,
- `values[t]`: `V(observation_t)`, the critic's value of the observation the step started from,
- `next_values[t]`: `V(next_observation_t)`, the value of the step's true successor (also at the
  end of an episode, before any reset),
- `terminated[t]`: the step reached a terminal state (whose value is 0),
- `truncated[t]`: the episode was cut after the step (its last state still has a value).

`done_t = terminated_t or truncated_t` only decides where a trace stops; whether the value of
the successor counts is decided by `terminated_t` alone. The loops run backwards over time and
are written to be read, not to be fast; `runtime.returns` computes the same numbers in batches.
"""

import numpy as np

__all__ = [
    "NORMALIZE_EPS",
    "check_discount",
    "discounted_returns",
    "gae",
    "lambda_returns",
    "normalize_advantages",
    "td_residuals",
]

NORMALIZE_EPS = 1e-8
"""Added to the standard deviation in `normalize_advantages`, as in Stable-Baselines3's PPO."""


def _trace(name: str, x: object, length: int | None, *, flag: bool = False) -> np.ndarray:
    """`x` as a 1-D array (float64, or bool for a flag), checked against the trace length."""
    array = np.asarray(x) if flag else np.asarray(x, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array over time, got shape {array.shape}")
    if flag and array.dtype != np.bool_:
        raise ValueError(f"{name} must be a bool array, got dtype {array.dtype}")
    if length is not None and array.shape[0] != length:
        raise ValueError(
            f"{name} must have length T = {length} (the length of rewards), got {array.shape[0]}"
        )
    return array


def check_discount(name: str, value: float) -> float:
    """`value` as a float, checked to lie in [0, 1] (a discount `gamma` or a GAE `lam`).

    Shared by every function that takes a discount, in spec and runtime, so that all of them
    refuse the same values with the same message.

    >>> check_discount("gamma", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: gamma must lie in [0, 1], got 1.5
    """
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def td_residuals(
    *,
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """The one-step temporal-difference residuals of a trace.

    `delta_t = r_t + gamma * (1 - terminated_t) * V(next_observation_t) - V(observation_t)`

    A terminated step does not bootstrap; every other step, truncated or not, does.

    Source: Schulman et al. 2015, "High-Dimensional Continuous Control Using Generalized
    Advantage Estimation", the definition above eq. 10.

    >>> td_residuals(rewards=[1.0, 2.0], values=[1.0, 1.0], next_values=[4.0, 4.0],
    ...              terminated=[False, True], gamma=0.5)
    array([2., 1.])
    """
    r = _trace("rewards", rewards, None)
    v = _trace("values", values, r.shape[0])
    v_next = _trace("next_values", next_values, r.shape[0])
    term = _trace("terminated", terminated, r.shape[0], flag=True)
    gamma = check_discount("gamma", gamma)
    return r + gamma * np.where(term, 0.0, v_next) - v


def gae(
    *,
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Generalized advantage estimates of a trace.

    ```
    delta_t = r_t + gamma * (1 - terminated_t) * V(next_observation_t) - V(observation_t)
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},    A_T = 0
    ```

    with `done_t = terminated_t or truncated_t`: the sum stops at the end of an episode, and a
    truncated step keeps the bootstrap `gamma * V(next_observation_t)` inside its own `delta_t`.
    With `lam = 0` this is `td_residuals`; with `lam = 1` it is `discounted_returns - values`
    (see there for the condition).

    Source: Schulman et al. 2015, eq. 16 (the discounted sum of residuals), computed by its
    backward recurrence; eqs. 17 and 18 are the cases `lam = 0` and `lam = 1`. Truncation is
    handled as in the DESIGN's GAE section.

    Worked example (gamma = 0.5, lam = 0.5, so gamma * lam = 0.25): the deltas are
    `1 + 0.5 - 1 = 0.5`, `2 + 0.5 - 1 = 1.5` and `3 + 0 - 1 = 2` (the last step terminates),
    so `A_2 = 2`, `A_1 = 1.5 + 0.25 * 2 = 2` and `A_0 = 0.5 + 0.25 * 2 = 1`.

    >>> gae(rewards=[1.0, 2.0, 3.0], values=[1.0, 1.0, 1.0], next_values=[1.0, 1.0, 1.0],
    ...     terminated=[False, False, True], truncated=[False, False, False],
    ...     gamma=0.5, lam=0.5)
    array([1., 2., 2.])

    A truncation after step 1 cuts the sum there, but step 1 still bootstraps from the value 4
    of its final observation: `delta_1 = 2 + 0.5 * 4 - 1 = 3`, `A_0 = 0.5 + 0.25 * 3 = 1.25`.

    >>> gae(rewards=[1.0, 2.0, 3.0], values=[1.0, 1.0, 1.0], next_values=[1.0, 4.0, 1.0],
    ...     terminated=[False, False, False], truncated=[False, True, False],
    ...     gamma=0.5, lam=0.5)
    array([1.25, 3.  , 2.5 ])
    """
    delta = td_residuals(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        gamma=gamma,
    )
    term = _trace("terminated", terminated, delta.shape[0], flag=True)
    trunc = _trace("truncated", truncated, delta.shape[0], flag=True)
    lam = check_discount("lam", lam)
    done = term | trunc
    advantages = np.zeros_like(delta)
    next_advantage = 0.0
    for t in reversed(range(delta.shape[0])):
        carry = 0.0 if done[t] else gamma * lam * next_advantage
        advantages[t] = delta[t] + carry
        next_advantage = advantages[t]
    return advantages


def lambda_returns(
    *,
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """The lambda-returns of a trace: `G^lambda_t = A_t + V(observation_t)`, the value targets.

    Source: Schulman et al. 2015, section 4 (the TD(lambda) targets `A^GAE + V`).

    With the first worked example of `gae` (advantages `[1, 2, 2]`, values 1):

    >>> lambda_returns(rewards=[1.0, 2.0, 3.0], values=[1.0, 1.0, 1.0],
    ...                next_values=[1.0, 1.0, 1.0], terminated=[False, False, True],
    ...                truncated=[False, False, False], gamma=0.5, lam=0.5)
    array([2., 3., 3.])
    """
    advantages = gae(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        truncated=truncated,
        gamma=gamma,
        lam=lam,
    )
    return advantages + _trace("values", values, advantages.shape[0])


def discounted_returns(
    *,
    rewards: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """Discounted Monte-Carlo returns of a trace, bootstrapped where an episode is cut.

    ```
    G_t = r_t + gamma * (1 - terminated_t) * B_t,
    B_t = G_{t+1}                    if t + 1 < T and not done_t,
    B_t = V(next_observation_t)      otherwise (truncated, or the end of the trace).
    ```

    An episode that terminates inside the trace contributes its exact discounted reward sum; a
    truncated episode, or one still running when the trace ends, adds the discounted value of
    its last true observation.

    Law: when the trace is consistent, i.e. `next_values[t] == values[t + 1]` wherever
    `t + 1 < T` and not `done_t` (the successor of a step is the start of the next one), then
    `gae(..., lam=1) == discounted_returns(...) - values` up to rounding.

    Source: Sutton and Barto 2018, eq. 3.8 (the return), with the bootstrap of eq. 7.1 at cuts.

    Worked example, gamma = 0.5, rewards `[1, 2, 3]`, no cut and zero bootstrap:
    `G_2 = 3`, `G_1 = 2 + 0.5 * 3 = 3.5`, `G_0 = 1 + 0.5 * 3.5 = 2.75`.

    >>> discounted_returns(rewards=[1.0, 2.0, 3.0], next_values=[0.0, 0.0, 0.0],
    ...                    terminated=[False, False, False], truncated=[False, False, False],
    ...                    gamma=0.5)
    array([2.75, 3.5 , 3.  ])
    """
    r = _trace("rewards", rewards, None)
    v_next = _trace("next_values", next_values, r.shape[0])
    term = _trace("terminated", terminated, r.shape[0], flag=True)
    trunc = _trace("truncated", truncated, r.shape[0], flag=True)
    gamma = check_discount("gamma", gamma)
    n_steps = r.shape[0]
    returns = np.zeros_like(r)
    for t in reversed(range(n_steps)):
        continues = t + 1 < n_steps and not (term[t] or trunc[t])
        bootstrap = returns[t + 1] if continues else v_next[t]
        returns[t] = r[t] + (0.0 if term[t] else gamma * bootstrap)
    return returns


def normalize_advantages(advantages: np.ndarray, *, eps: float = NORMALIZE_EPS) -> np.ndarray:
    """The z-score of a whole batch of advantages: `(A - mean(A)) / (std(A) + eps)`.

    The mean and the population standard deviation (`ddof = 0`) are taken over every entry of
    `advantages`, whatever its shape; `eps` (default `NORMALIZE_EPS = 1e-8`) keeps a constant
    batch finite (it maps to zeros). Only the policy term uses normalised advantages; value
    targets use the raw ones.

    Source: the advantage normalisation of OpenAI Baselines' `ppo2` and Stable-Baselines3's PPO
    (an implementation detail, not in the PPO paper).

    Worked example: `[1, 3]` has mean 2 and standard deviation 1.

    >>> normalize_advantages(np.array([1.0, 3.0]), eps=0.0)
    array([-1.,  1.])
    """
    a = np.asarray(advantages, dtype=np.float64)
    if a.size == 0:
        raise ValueError("advantages must have at least one entry, got an empty array")
    return (a - a.mean()) / (a.std() + eps)
