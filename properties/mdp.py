"""Laws of tabular MDP solvers (`spec.mdp`'s interface), on random finite MDPs by default.

Each factory takes the solver(s) under test and, through `mdps`, the MDPs to check them on:
random tabular MDPs (`properties.strategies.tabular_mdps`) unless told otherwise, so the same
laws run on the tabular view of an environment such as GridWorld.

- The Bellman policy and optimality operators are monotone and `gamma`-contractions in the sup
  norm (Puterman 1994, proposition 6.2.4 and theorem 6.2.3).
- Exact policy evaluation is the fixed point of the policy operator.
- `k` sweeps of value iteration from 0 are within `gamma^k |v*|_inf` of the optimal values `v*`
  (computed exactly by policy iteration), and stopping at a change of `tol` leaves them within
  `gamma tol / (1 - gamma)`.
- The optimal values dominate the values of every policy, and the greedy policy of `v*`
  attains them.

Tolerance: `properties.tolerances.VALUE_TOL`, relative to the size of the values and rewards
involved; discounts for solves stay below `MAX_SOLVE_GAMMA`, so the linear systems are well
conditioned. `check_monotone_contraction` is the check that `properties.gridworld` shares.
"""

from collections.abc import Callable

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from checked_rl.properties.strategies.rollouts import policies, tabular_mdps, value_vectors
from checked_rl.properties.tolerances import VALUE_TOL
from checked_rl.spec.mdp import TabularMDP

__all__ = [
    "MAX_SOLVE_GAMMA",
    "MAX_SWEEPS",
    "MDP_TOL",
    "check_monotone_contraction",
    "greedy_policy_of_optimal_values_is_optimal",
    "optimal_values_dominate_every_policy",
    "optimality_operator_is_monotone_contraction",
    "policy_evaluation_is_fixed_point",
    "policy_operator_is_monotone_contraction",
    "value_iteration_converges_within_gamma_power",
]

MDP_TOL = VALUE_TOL
"""`properties.tolerances.VALUE_TOL` under the name this module has always exported."""

MAX_SOLVE_GAMMA = 0.95
"""Largest discount for the laws that solve for values: condition numbers stay below ~40."""

MAX_SWEEPS = 40
"""Largest number of value-iteration sweeps checked against the `gamma^k` bound."""

_Operator = Callable[..., np.ndarray]


def _sup(x: np.ndarray) -> float:
    return float(np.max(np.abs(x))) if x.size else 0.0


def _scale(mdp: TabularMDP, *arrays: np.ndarray, gamma: float = 0.0) -> float:
    """One plus the rewards' size over `1 - gamma` plus the given arrays' sizes."""
    return 1.0 + _sup(mdp.R) / (1.0 - min(gamma, MAX_SOLVE_GAMMA)) + sum(map(_sup, arrays))


def check_monotone_contraction(
    apply: Callable[[np.ndarray], np.ndarray],
    u: np.ndarray,
    w: np.ndarray,
    gamma: float,
    *,
    tol: float,
    what: str,
) -> None:
    """Assert that the operator `apply` is a `gamma`-contraction in the sup norm on `u, w`,
    `|T u - T w|_inf <= gamma |u - w|_inf`, and monotone on `u <= max(u, w)`, both to `tol`.

    `what` names the operator in the failure message.
    """
    tu, tw = apply(u), apply(w)
    assert _sup(tu - tw) <= gamma * _sup(u - w) + tol, (
        f"{what}: |Tu - Tw| = {_sup(tu - tw)} > gamma |u - w| = {gamma * _sup(u - w)}"
    )
    above = np.maximum(u, w)
    assert np.all(apply(above) >= tu - tol), f"{what}: u <= max(u, w) but T u > T max(u, w)"


def policy_operator_is_monotone_contraction(
    bellman_policy_operator: _Operator,
    *,
    mdps: st.SearchStrategy[TabularMDP] | None = None,
) -> Callable[[], None]:
    """`|T^pi u - T^pi w|_inf <= gamma |u - w|_inf`, and `u <= w` implies `T^pi u <= T^pi w`.

    Assumes random MDPs (`tabular_mdps()`, or `mdps`), stochastic policies `[S, A]`, value
    vectors and `gamma` in `[0, 1]`; to `VALUE_TOL` of the rewards' and values' size. Accepts
    any operator `(mdp, pi, v, gamma) -> [S]` with the spec's convention for terminal states
    (value 0).
    """

    @given(mdp=mdps or tabular_mdps(), gamma=st.floats(0.0, 1.0), data=st.data())
    def prop(mdp: TabularMDP, gamma: float, data: st.DataObject) -> None:
        pi = data.draw(policies(mdp.n_states, mdp.n_actions))
        u, w = data.draw(value_vectors(mdp.n_states)), data.draw(value_vectors(mdp.n_states))
        check_monotone_contraction(
            lambda v: bellman_policy_operator(mdp, pi, v, gamma),
            u,
            w,
            gamma,
            tol=VALUE_TOL * _scale(mdp, u, w),
            what="T^pi",
        )

    return prop


def optimality_operator_is_monotone_contraction(
    bellman_optimality_operator: _Operator,
    *,
    mdps: st.SearchStrategy[TabularMDP] | None = None,
) -> Callable[[], None]:
    """`|T* u - T* w|_inf <= gamma |u - w|_inf`, and `u <= w` implies `T* u <= T* w`.

    Assumes random MDPs (`tabular_mdps()`, or `mdps`), value vectors and `gamma` in `[0, 1]`; to
    `VALUE_TOL` of the rewards' and values' size. Accepts any operator `(mdp, v, gamma) -> [S]`
    (a max over actions of any order of summation).
    """

    @given(mdp=mdps or tabular_mdps(), gamma=st.floats(0.0, 1.0), data=st.data())
    def prop(mdp: TabularMDP, gamma: float, data: st.DataObject) -> None:
        u, w = data.draw(value_vectors(mdp.n_states)), data.draw(value_vectors(mdp.n_states))
        check_monotone_contraction(
            lambda v: bellman_optimality_operator(mdp, v, gamma),
            u,
            w,
            gamma,
            tol=VALUE_TOL * _scale(mdp, u, w),
            what="T*",
        )

    return prop


def policy_evaluation_is_fixed_point(
    policy_evaluation: _Operator,
    bellman_policy_operator: _Operator,
    *,
    mdps: st.SearchStrategy[TabularMDP] | None = None,
) -> Callable[[], None]:
    """`v^pi = policy_evaluation(pi)` satisfies `T^pi v^pi = v^pi`, and is 0 at terminal states.

    Assumes random MDPs (`tabular_mdps()`, or `mdps`), stochastic policies and `gamma` up to
    `MAX_SOLVE_GAMMA`; the residual within `VALUE_TOL` of the values' size, terminal values
    exactly 0. Accepts a linear solve or an iteration run to that precision, paired with an
    operator following the same convention.
    """

    @given(mdp=mdps or tabular_mdps(), gamma=st.floats(0.0, MAX_SOLVE_GAMMA), data=st.data())
    def prop(mdp: TabularMDP, gamma: float, data: st.DataObject) -> None:
        pi = data.draw(policies(mdp.n_states, mdp.n_actions))
        v = policy_evaluation(mdp, pi, gamma)
        residual = bellman_policy_operator(mdp, pi, v, gamma) - v
        assert _sup(residual) <= VALUE_TOL * _scale(mdp, v, gamma=gamma), f"residual {residual}"
        np.testing.assert_array_equal(v[mdp.terminal], 0.0)

    return prop


def value_iteration_converges_within_gamma_power(
    value_iteration: Callable[..., tuple[np.ndarray, int]],
    policy_iteration: Callable[..., tuple[np.ndarray, np.ndarray]],
    *,
    mdps: st.SearchStrategy[TabularMDP] | None = None,
) -> Callable[[], None]:
    """After `k` sweeps from 0, `|v_k - v*|_inf <= gamma^k |v*|_inf`; stopped at a change of at
    most `tol`, `|v - v*|_inf <= gamma tol / (1 - gamma)` (`v*` by policy iteration).

    Assumes random MDPs (`tabular_mdps()`, or `mdps`), `gamma` up to `MAX_SOLVE_GAMMA`, `k` up
    to `MAX_SWEEPS`, `tol` in `[1e-8, 1]`, iteration from `v_0 = 0` returning the newest iterate
    (the one whose change was at most `tol`) and at most `k` sweeps with `tol = 0`. Accepts
    synchronous and in-place sweeps; it rejects one that returns the iterate before the last
    change, whose bound is only `tol / (1 - gamma)`.
    """

    @given(
        mdp=mdps or tabular_mdps(),
        gamma=st.floats(0.0, MAX_SOLVE_GAMMA),
        sweeps=st.integers(0, MAX_SWEEPS),
        tol=st.floats(1e-8, 1.0),
    )
    def prop(mdp: TabularMDP, gamma: float, sweeps: int, tol: float) -> None:
        _, v_star = policy_iteration(mdp, gamma)
        slack = VALUE_TOL * _scale(mdp, v_star, gamma=gamma)
        v_k, done = value_iteration(mdp, gamma, tol=0.0, max_iterations=sweeps)
        assert done <= sweeps, f"{done} sweeps made, at most {sweeps} allowed"
        assert _sup(v_k - v_star) <= gamma**sweeps * _sup(v_star) + slack, (
            f"after {sweeps} sweeps |v - v*| = {_sup(v_k - v_star)} > "
            f"gamma^k |v*| = {gamma**sweeps * _sup(v_star)}"
        )
        v_tol, _ = value_iteration(mdp, gamma, tol=tol, max_iterations=10_000)
        assert _sup(v_tol - v_star) <= gamma * tol / (1.0 - gamma) + slack

    return prop


def optimal_values_dominate_every_policy(
    policy_iteration: Callable[..., tuple[np.ndarray, np.ndarray]],
    policy_evaluation: _Operator,
    *,
    mdps: st.SearchStrategy[TabularMDP] | None = None,
) -> Callable[[], None]:
    """`v* >= v^pi` in every state, for every policy `pi`.

    Assumes random MDPs (`tabular_mdps()`, or `mdps`), stochastic policies and `gamma` up to
    `MAX_SOLVE_GAMMA`, to `VALUE_TOL`. Accepts any policy iteration returning `(policy, values)`
    and any policy evaluation.
    """

    @given(mdp=mdps or tabular_mdps(), gamma=st.floats(0.0, MAX_SOLVE_GAMMA), data=st.data())
    def prop(mdp: TabularMDP, gamma: float, data: st.DataObject) -> None:
        _, v_star = policy_iteration(mdp, gamma)
        pi = data.draw(policies(mdp.n_states, mdp.n_actions))
        v_pi = policy_evaluation(mdp, pi, gamma)
        tol = VALUE_TOL * _scale(mdp, v_star, v_pi, gamma=gamma)
        assert np.all(v_star >= v_pi - tol), f"v* = {v_star} below v^pi = {v_pi}"

    return prop


def greedy_policy_of_optimal_values_is_optimal(
    greedy_policy: _Operator,
    policy_evaluation: _Operator,
    bellman_optimality_operator: _Operator,
    policy_iteration: Callable[..., tuple[np.ndarray, np.ndarray]],
    *,
    mdps: st.SearchStrategy[TabularMDP] | None = None,
) -> Callable[[], None]:
    """`v*` is the fixed point of `T*`, and the greedy policy of `v*` has value `v*`.

    Assumes random MDPs (`tabular_mdps()`, or `mdps`) and `gamma` up to `MAX_SOLVE_GAMMA`, to
    `VALUE_TOL`. Accepts any greedy policy `[S, A]` (ties broken any way, deterministic or
    spread over the tied actions), since every maximising action has the optimal value.
    """

    @given(mdp=mdps or tabular_mdps(), gamma=st.floats(0.0, MAX_SOLVE_GAMMA))
    def prop(mdp: TabularMDP, gamma: float) -> None:
        _, v_star = policy_iteration(mdp, gamma)
        tol = VALUE_TOL * _scale(mdp, v_star, gamma=gamma)
        assert _sup(bellman_optimality_operator(mdp, v_star, gamma) - v_star) <= tol
        v_greedy = policy_evaluation(mdp, greedy_policy(mdp, v_star, gamma), gamma)
        assert _sup(v_greedy - v_star) <= tol, f"greedy value {v_greedy}, v* {v_star}"

    return prop
