"""Strategies for rollouts, categorical logits and tabular MDPs.

- `rollouts`: the `[T, N]` arrays of a rollout (rewards, values, next values, terminated,
  truncated), every field drawn independently: the *general* strategy,
- `consistent_rollouts`: rollouts as environments produce them, where `next_values[t] ==
  values[t + 1]` wherever step `t` neither terminated nor was truncated and `t + 1 < T` (the
  successor of a step is the observation the next step starts from),
- `discounts`: gamma or lambda in [0, 1], the endpoints included,
- `logits`: batches `[B, A]` (or `[T, N, A]`) of finite logits, optionally with impossible
  (`-inf`) actions,
- `ppo_minibatches`: the arguments of a PPO loss evaluation (`spec.ppo.ppo_loss`),
- `tabular_mdps`, `policies`, `value_vectors`: random finite MDPs with valid transition rows,
  stochastic policies for them and value functions on their states.

Everything is NumPy float64 (flags bool); callers cast for float32 checks. Sizes and magnitudes
are bounded by the named constants below; floats are finite.
"""

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checked_rl.spec.distributions import log_prob
from checked_rl.spec.mdp import TabularMDP

__all__ = [
    "LOGITS_MAX_BATCH",
    "LOGIT_MAGNITUDE",
    "MAX_ACTIONS",
    "MDP_MAX_ACTIONS",
    "MDP_MAX_STATES",
    "POLICY_DRIFT",
    "REWARD_MAGNITUDE",
    "ROLLOUT_MAX_ENVS",
    "ROLLOUT_MAX_STEPS",
    "PPOMinibatch",
    "RolloutArrays",
    "consistent_rollouts",
    "discounts",
    "logits",
    "policies",
    "ppo_minibatches",
    "rollouts",
    "tabular_mdps",
    "value_vectors",
]

ROLLOUT_MAX_STEPS = 64  # T: long enough for several blocks of runtime.returns' blocked scan
ROLLOUT_MAX_ENVS = 4  # N
REWARD_MAGNITUDE = 1e3  # bound on |rewards|, |values|, |next_values|
LOGITS_MAX_BATCH = 8  # B, distributions per batch
MAX_ACTIONS = 6  # A
LOGIT_MAGNITUDE = 30.0  # bound on finite |logits|
MDP_MAX_STATES = 6
MDP_MAX_ACTIONS = 3
_MDP_WEIGHT = 3  # transition rows are integer weights 0..3, normalised
POLICY_DRIFT = 1.0  # bound on |new logit - old logit| in a PPO minibatch


class RolloutArrays(NamedTuple):
    """The per-step arrays of a rollout, each `[T, N]`: floats float64, flags bool."""

    rewards: np.ndarray
    values: np.ndarray
    next_values: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


def _floats(magnitude: float) -> st.SearchStrategy[float]:
    return st.floats(-magnitude, magnitude, allow_nan=False, allow_infinity=False)


@st.composite
def rollouts(
    draw: st.DrawFn,
    *,
    min_steps: int = 1,
    max_steps: int = ROLLOUT_MAX_STEPS,
    max_envs: int = ROLLOUT_MAX_ENVS,
    consistent: bool = False,
    magnitude: float = REWARD_MAGNITUDE,
) -> RolloutArrays:
    """A rollout of `T` in `[min_steps, max_steps]` steps of `N` in `[1, max_envs]` environments.

    Every field is drawn independently (a step may be both terminated and truncated), so
    `next_values[t]` and `values[t + 1]` differ even inside an episode, which no environment
    produces: this *general* strategy checks implementations that read `V(next_observation_t)`
    from `next_values` only. With `consistent` (see `consistent_rollouts`), `next_values[t] =
    values[t + 1]` wherever `t + 1 < T` and the step is not done, as when `next_observation_t`
    is `observation_{t+1}`.
    """
    n_steps = draw(st.integers(min_steps, max_steps))
    n_envs = draw(st.integers(1, max_envs))
    shape = (n_steps, n_envs)
    floats = hnp.arrays(np.float64, shape, elements=_floats(magnitude))
    flags = hnp.arrays(np.bool_, shape)
    rewards, values, next_values = draw(floats), draw(floats), draw(floats)
    terminated, truncated = draw(flags), draw(flags)
    if consistent:
        inside = ~(terminated | truncated)[:-1]
        next_values[:-1] = np.where(inside, values[1:], next_values[:-1])
    return RolloutArrays(rewards, values, next_values, terminated, truncated)


def consistent_rollouts(
    *,
    min_steps: int = 1,
    max_steps: int = ROLLOUT_MAX_STEPS,
    max_envs: int = ROLLOUT_MAX_ENVS,
    magnitude: float = REWARD_MAGNITUDE,
) -> st.SearchStrategy[RolloutArrays]:
    """Rollouts as environments produce them: `next_values[t] == values[t + 1]` wherever step
    `t` did not end an episode, different only at terminations, truncations and the last step.

    In a real rollout the successor of a step that did not end an episode is the observation
    the next step starts from, so an implementation may legitimately take `V(s_{t+1})` from
    `values[t + 1]` there (the textbook TD(lambda) recursion does); the default strategy of the
    returns properties. `next_values` is free (any value, the value of a final observation) at
    terminations, truncations and `t = T - 1`. Sizes as in `rollouts`.
    """
    return rollouts(
        min_steps=min_steps,
        max_steps=max_steps,
        max_envs=max_envs,
        consistent=True,
        magnitude=magnitude,
    )


def discounts() -> st.SearchStrategy[float]:
    """A discount or trace-decay factor in [0, 1]: the endpoints, typical values, anything."""
    return st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]), st.floats(0.0, 1.0))


@st.composite
def logits(
    draw: st.DrawFn,
    *,
    max_batch: int = LOGITS_MAX_BATCH,
    max_actions: int = MAX_ACTIONS,
    impossible: bool = False,
    magnitude: float = LOGIT_MAGNITUDE,
    batch_axes: int = 1,
) -> np.ndarray:
    """Logits `[B, A]`, finite; with `impossible`, some entries `-inf` (never a whole row).

    With `batch_axes = 2` the batch is `[T, N]` (`T * N <= max_batch`), as a rollout's logits.
    """
    if batch_axes not in (1, 2):
        raise ValueError(f"logits: batch_axes must be 1 or 2, got {batch_axes}")
    n_actions = draw(st.integers(1, max_actions))
    if batch_axes == 1:
        batch: tuple[int, ...] = (draw(st.integers(1, max_batch)),)
    else:
        n_steps = draw(st.integers(1, max_batch))
        batch = (n_steps, draw(st.integers(1, max(1, max_batch // n_steps))))
    shape = (*batch, n_actions)
    z = draw(hnp.arrays(np.float64, shape, elements=_floats(magnitude)))
    if impossible:
        masked = draw(hnp.arrays(np.bool_, shape))
        masked[..., draw(st.integers(0, n_actions - 1))] = False
        z = np.where(masked, -np.inf, z)
    return z


class PPOMinibatch(NamedTuple):
    """The arguments of one PPO loss evaluation: arrays `[B]` (logits `[B, A]`) and settings."""

    logits: np.ndarray
    actions: np.ndarray
    old_log_probs: np.ndarray
    advantages: np.ndarray
    values: np.ndarray
    returns: np.ndarray
    old_values: np.ndarray
    clip_coef: float
    value_clip_coef: float | None
    value_coef: float
    entropy_coef: float


@st.composite
def ppo_minibatches(
    draw: st.DrawFn, *, max_batch: int = LOGITS_MAX_BATCH, magnitude: float = 10.0
) -> PPOMinibatch:
    """A PPO minibatch: the old policy's logits differ from the current ones by at most
    `POLICY_DRIFT` per entry (so ratios lie in `[e^-2, e^2]`); value clipping on or off."""
    z = draw(logits(max_batch=max_batch, magnitude=magnitude))
    batch, n_actions = z.shape
    drift = draw(hnp.arrays(np.float64, z.shape, elements=_floats(POLICY_DRIFT)))
    actions = draw(hnp.arrays(np.int64, (batch,), elements=st.integers(0, n_actions - 1)))
    per_sample = hnp.arrays(np.float64, (batch,), elements=_floats(magnitude))
    return PPOMinibatch(
        logits=z,
        actions=actions,
        old_log_probs=log_prob(z + drift, actions),
        advantages=draw(per_sample),
        values=draw(per_sample),
        returns=draw(per_sample),
        old_values=draw(per_sample),
        clip_coef=draw(st.floats(0.05, 0.5)),
        value_clip_coef=draw(st.none() | st.floats(0.05, 2.0)),
        value_coef=draw(st.floats(0.0, 1.0)),
        entropy_coef=draw(st.floats(0.0, 0.1)),
    )


def _stochastic_rows(weights: np.ndarray) -> np.ndarray:
    """Normalise non-negative weights along the last axis; an all-zero row becomes uniform."""
    weights = weights.astype(np.float64)
    totals = weights.sum(axis=-1, keepdims=True)
    return np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), 1 / weights.shape[-1])


@st.composite
def tabular_mdps(
    draw: st.DrawFn,
    *,
    max_states: int = MDP_MAX_STATES,
    max_actions: int = MDP_MAX_ACTIONS,
    magnitude: float = 10.0,
) -> TabularMDP:
    """A random finite MDP: sparse stochastic `P` rows, bounded `R`, some terminal states."""
    n_states = draw(st.integers(1, max_states))
    n_actions = draw(st.integers(1, max_actions))
    weights = draw(
        hnp.arrays(np.int64, (n_states, n_actions, n_states), elements=st.integers(0, _MDP_WEIGHT))
    )
    rewards = draw(hnp.arrays(np.float64, (n_states, n_actions), elements=_floats(magnitude)))
    terminal = draw(hnp.arrays(np.bool_, (n_states,)))
    return TabularMDP(P=_stochastic_rows(weights), R=rewards, terminal=terminal)


def policies(n_states: int, n_actions: int) -> st.SearchStrategy[np.ndarray]:
    """Stochastic policies `pi[s, a]` (deterministic ones included)."""
    weights = hnp.arrays(np.int64, (n_states, n_actions), elements=st.integers(0, 4))
    return weights.map(_stochastic_rows)


def value_vectors(n_states: int, magnitude: float = 100.0) -> st.SearchStrategy[np.ndarray]:
    """Value functions `v[s]`, finite and bounded by `magnitude`."""
    return hnp.arrays(np.float64, (n_states,), elements=_floats(magnitude))
