"""Finite MDPs in tabular form, solved exactly.

A `TabularMDP` has states `0 .. S-1` and actions `0 .. A-1`:

- `P[s, a, s']`: the probability of moving from `s` to `s'` under `a` (rows sum to one),
- `R[s, a]`: the expected reward of taking `a` in `s`,
- `terminal[s]`: True for terminal states, whose value is 0 by definition.

Policies are stochastic matrices `pi[s, a]` (rows sum to one). Values `v[s]` satisfy the Bellman
equations with `v[s] = 0` at terminal states: whatever `P` and `R` say there is ignored, and
the value of a step into a terminal state is its reward alone. The solvers follow Sutton and
Barto 2018, chapter 4 (policy evaluation, policy iteration, value iteration).

The doctests use `stay_or_go()`, a two-state MDP small enough to solve by hand.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from checked_rl.spec.returns import check_discount

__all__ = [
    "TabularMDP",
    "ValueIteration",
    "bellman_optimality_operator",
    "bellman_policy_operator",
    "greedy_policy",
    "policy_evaluation",
    "policy_iteration",
    "q_values",
    "stay_or_go",
    "value_iteration",
]


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP: transition tensor `P[s, a, s']`, rewards `R[s, a]`, terminal mask `[s]`."""

    P: np.ndarray
    R: np.ndarray
    terminal: np.ndarray

    def __post_init__(self) -> None:
        if self.P.ndim != 3 or self.P.shape[0] != self.P.shape[2]:
            raise ValueError(f"P must have shape [S, A, S], got {self.P.shape}")
        n_states, n_actions, _ = self.P.shape
        if self.R.shape != (n_states, n_actions):
            raise ValueError(
                f"R must have shape [S, A] = {(n_states, n_actions)}, got {self.R.shape}"
            )
        if self.terminal.shape != (n_states,) or self.terminal.dtype != np.bool_:
            raise ValueError(
                f"terminal must be a bool array of shape [S] = {(n_states,)}, "
                f"got {self.terminal.dtype} {self.terminal.shape}"
            )
        if np.any(self.P < 0) or not np.allclose(self.P.sum(axis=2), 1.0):
            raise ValueError("every row P[s, a, :] must be a probability distribution")

    @property
    def n_states(self) -> int:
        """The number of states S."""
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        """The number of actions A."""
        return self.P.shape[1]


def stay_or_go() -> TabularMDP:
    """The doctests' example: in state 0, `stay` (action 0) or `go` (action 1) to terminal 1.

    Staying earns 0 and returns to state 0; going earns 1 and ends the episode. With any
    `gamma < 1` going at once is optimal, `v* = [1, 0]`.

    >>> stay_or_go().R
    array([[0., 1.],
           [0., 0.]])
    """
    return TabularMDP(
        P=np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]]),
        R=np.array([[0.0, 1.0], [0.0, 0.0]]),
        terminal=np.array([False, True]),
    )


def _check_values(mdp: TabularMDP, v: np.ndarray) -> np.ndarray:
    """`v` as a float64 array, checked to have shape `[S]`."""
    values = np.asarray(v, dtype=np.float64)
    if values.shape != (mdp.n_states,):
        raise ValueError(f"v must have shape [S] = {(mdp.n_states,)}, got {values.shape}")
    return values


def _check_policy(mdp: TabularMDP, pi: np.ndarray) -> np.ndarray:
    """`pi` as a float64 array, checked to be a stochastic matrix `[S, A]`."""
    policy = np.asarray(pi, dtype=np.float64)
    shape = (mdp.n_states, mdp.n_actions)
    if policy.shape != shape:
        raise ValueError(f"pi must have shape [S, A] = {shape}, got {policy.shape}")
    if np.any(policy < 0) or not np.allclose(policy.sum(axis=1), 1.0):
        raise ValueError("every row pi[s, :] must be a probability distribution")
    return policy


def q_values(mdp: TabularMDP, v: np.ndarray, gamma: float) -> np.ndarray:
    """The one-step look-ahead `Q[s, a] = R[s, a] + gamma * sum_s' P[s, a, s'] v[s']`.

    Rows of terminal states are 0 (nothing happens after the end).

    >>> q_values(stay_or_go(), np.array([4.0, 0.0]), gamma=0.5)
    array([[2., 1.],
           [0., 0.]])
    """
    values = _check_values(mdp, v)
    gamma = check_discount("gamma", gamma)
    q = mdp.R + gamma * (mdp.P @ values)
    q[mdp.terminal] = 0.0
    return q


def bellman_policy_operator(
    mdp: TabularMDP, pi: np.ndarray, v: np.ndarray, gamma: float
) -> np.ndarray:
    """The Bellman operator of a policy: `(T^pi v)[s] = sum_a pi[s, a] Q_v[s, a]`, 0 if terminal.

    A monotone `gamma`-contraction in the sup norm; its fixed point is `v^pi`.

    Source: Sutton and Barto 2018, eq. 4.5.

    >>> uniform = np.full((2, 2), 0.5)
    >>> bellman_policy_operator(stay_or_go(), uniform, np.array([4.0, 0.0]), gamma=0.5)
    array([1.5, 0. ])
    """
    policy = _check_policy(mdp, pi)
    return np.sum(policy * q_values(mdp, v, gamma), axis=1)


def bellman_optimality_operator(mdp: TabularMDP, v: np.ndarray, gamma: float) -> np.ndarray:
    """The Bellman optimality operator: `(T* v)[s] = max_a Q_v[s, a]`, 0 if terminal.

    A monotone `gamma`-contraction in the sup norm; its fixed point is the optimal `v*`.

    Source: Sutton and Barto 2018, eq. 4.10.

    >>> bellman_optimality_operator(stay_or_go(), np.array([4.0, 0.0]), gamma=0.5)
    array([2., 0.])
    """
    return np.max(q_values(mdp, v, gamma), axis=1)


def policy_evaluation(mdp: TabularMDP, pi: np.ndarray, gamma: float) -> np.ndarray:
    """The exact value `v^pi`: the solution of `(I - gamma P_pi) v = r_pi` by a linear solve.

    `P_pi[s, s'] = sum_a pi[s, a] P[s, a, s']` and `r_pi[s] = sum_a pi[s, a] R[s, a]`, with the
    rows of terminal states replaced by `v[s] = 0`. Unique for `gamma < 1`; with `gamma = 1` it
    needs every non-terminal state to reach a terminal one with probability 1 under `pi`, and a
    singular system raises a ValueError.

    Source: Sutton and Barto 2018, eq. 4.4 (solved directly instead of iteratively).

    The uniform policy in `stay_or_go()`: `v_0 = 0.5 (0 + 0.5 v_0) + 0.5 * 1`, so `v_0 = 2/3`.

    >>> policy_evaluation(stay_or_go(), np.full((2, 2), 0.5), gamma=0.5).round(6)
    array([0.666667, 0.      ])
    """
    policy = _check_policy(mdp, pi)
    gamma = check_discount("gamma", gamma)
    live = (~mdp.terminal).astype(np.float64)
    p_pi = np.einsum("sa,sat->st", policy, mdp.P) * live[:, None]
    r_pi = np.sum(policy * mdp.R, axis=1) * live
    system = np.eye(mdp.n_states) - gamma * p_pi
    try:
        return np.linalg.solve(system, r_pi)
    except np.linalg.LinAlgError as error:
        raise ValueError(
            f"policy_evaluation: I - gamma P_pi is singular (gamma = {gamma}): some state never "
            "reaches a terminal state under pi"
        ) from error


def greedy_policy(mdp: TabularMDP, v: np.ndarray, gamma: float) -> np.ndarray:
    """The deterministic policy greedy with respect to `v`, as a one-hot matrix `pi[s, a]`.

    It picks `argmax_a Q_v[s, a]`, the smallest action on ties (action 0 at terminal states);
    `greedy_policy(...).argmax(axis=1)` gives the actions.

    >>> greedy_policy(stay_or_go(), np.array([4.0, 0.0]), gamma=0.5)
    array([[1., 0.],
           [1., 0.]])
    """
    actions = np.argmax(q_values(mdp, v, gamma), axis=1)
    return np.eye(mdp.n_actions)[actions]


class ValueIteration(NamedTuple):
    """The result of `value_iteration`: the last values and the number of sweeps made."""

    values: np.ndarray
    iterations: int


def value_iteration(
    mdp: TabularMDP, gamma: float, *, tol: float = 1e-10, max_iterations: int = 10_000
) -> ValueIteration:
    """Iterate `v_{k+1} = T* v_k` from `v_0 = 0` until `|v_{k+1} - v_k|_inf <= tol`.

    Returns `v_k` and `k`, where `k` is the first sweep whose change is at most `tol`, or
    `max_iterations`, whichever comes first (`tol = 0` runs exactly `max_iterations` sweeps
    unless the values stop changing). Bounds, for `gamma < 1` and the optimal values `v*`:
    `|v_k - v*|_inf <= gamma^k |v*|_inf` after `k` sweeps (contraction from `v_0 = 0`), and on
    stopping by `tol`, `|v_k - v*|_inf <= gamma * tol / (1 - gamma)`.

    Source: Sutton and Barto 2018, section 4.4; the bounds from Puterman 1994, theorem 6.3.1.

    In `stay_or_go()`: `v_1 = [max(0, 1), 0] = [1, 0]`, then `v_2 = [max(0.5, 1), 0]` is the same.

    >>> value_iteration(stay_or_go(), gamma=0.5)
    ValueIteration(values=array([1., 0.]), iterations=2)
    """
    gamma = check_discount("gamma", gamma)
    if max_iterations < 0:
        raise ValueError(f"max_iterations must be >= 0, got {max_iterations}")
    values = np.zeros(mdp.n_states)
    for k in range(1, max_iterations + 1):
        updated = bellman_optimality_operator(mdp, values, gamma)
        change = np.max(np.abs(updated - values))
        values = updated
        if change <= tol:
            return ValueIteration(values, k)
    return ValueIteration(values, max_iterations)


def policy_iteration(
    mdp: TabularMDP, gamma: float, *, max_iterations: int = 1_000
) -> tuple[np.ndarray, np.ndarray]:
    """The optimal policy and values `(pi*, v*)` by policy iteration, with exact evaluation.

    Evaluate `pi` exactly, switch every state to a greedy action whose look-ahead beats the
    current action's by more than a rounding margin (`1e-12 * (1 + |Q|)`), and stop when no
    state switches; keeping the current action on near-ties makes the loop finite. Starts from
    the policy greedy with respect to `v = 0`. Needs `gamma < 1`, or every policy met to
    reach a terminal state.

    Source: Sutton and Barto 2018, section 4.3.

    >>> pi, v = policy_iteration(stay_or_go(), gamma=0.5)
    >>> pi.argmax(axis=1), v
    (array([1, 0]), array([1., 0.]))
    """
    policy = greedy_policy(mdp, np.zeros(mdp.n_states), gamma)
    for _ in range(max_iterations):
        values = policy_evaluation(mdp, policy, gamma)
        q = q_values(mdp, values, gamma)
        current = np.sum(policy * q, axis=1)
        best = np.argmax(q, axis=1)
        better = q[np.arange(mdp.n_states), best] > current + 1e-12 * (1.0 + np.abs(current))
        if not np.any(better):
            return policy, values
        policy = policy.copy()
        policy[better] = np.eye(mdp.n_actions)[best[better]]
    raise ValueError(f"policy_iteration: no stable policy after {max_iterations} iterations")
