"""Properties: GridWorld's batched twin and its tabular view agree with `spec.envs.gridworld`.

Factories, as everywhere in `properties`: `step_matches_spec(make_env)` takes a callable
`make_env(num_envs, params, dtype)` building the batched environment under test, which must
implement `runtime.envs.base.BatchedEnv` plus `get_state() -> (cells [N, 2], steps [N])` and
`set_state(cells, steps)`; `tabular_matches_step(tabular)` takes the function building the
tabular view. The dynamics are integer arithmetic, so steps and the tabular view agree exactly;
the value laws compare solved values to within `tolerances.VALUE_TOL`.
"""

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from checked_rl.properties.mdp import check_monotone_contraction
from checked_rl.properties.strategies.envs import MAX_BATCH, action_sequences, gridworld_params
from checked_rl.properties.strategies.envs import gridworld_states as states_of
from checked_rl.properties.tolerances import VALUE_TOL
from checked_rl.runtime.envs.base import EnvStep
from checked_rl.spec.envs import gridworld as spec
from checked_rl.spec.mdp import TabularMDP


class StatefulGridWorld(Protocol):
    """A batched GridWorld whose state can be read and written (what these properties need)."""

    num_envs: int

    def step(self, actions: Tensor) -> EnvStep: ...
    def observe(self) -> Tensor: ...
    def get_state(self) -> tuple[Tensor, Tensor]: ...
    def set_state(self, cells: Tensor, steps: Tensor) -> None: ...


MakeGridWorld = Callable[[int, spec.Params, torch.dtype], StatefulGridWorld]


def step_matches_spec(
    make_env: MakeGridWorld, *, dtype: torch.dtype = torch.float32
) -> Callable[[], None]:
    """One batched step from any cells agrees exactly with `spec.step`, auto-reset included.

    Assumes a GridWorld with `get_state` / `set_state` (cells `[N, 2]` int64) that takes int64
    CPU actions 0..3 and autoresets on the same step to the layout's fixed start; compares
    observations, rewards and flags exactly (integer dynamics). Accepts any implementation of
    the moves, walls and time limit, on any device it moves results back from.
    """

    @given(params=gridworld_params(), data=st.data())
    def prop(params: spec.Params, data: st.DataObject) -> None:
        states = data.draw(st.lists(states_of(params), min_size=1, max_size=MAX_BATCH))
        n = len(states)
        actions = data.draw(action_sequences(spec.N_ACTIONS, min_size=n, max_size=n))
        env = make_env(n, params, dtype)
        env.set_state(
            torch.tensor([(s.row, s.col) for s in states], dtype=torch.int64),
            torch.tensor([s.steps for s in states], dtype=torch.int64),
        )
        out = env.step(torch.tensor(actions, dtype=torch.int64))
        observed = env.observe()
        _, start_observation = spec.reset(params, np.random.default_rng(0))
        for i, (state, action) in enumerate(zip(states, actions, strict=True)):
            want = spec.step(params, state, action)
            where = f"env {i} at {state} under action {action}"
            np.testing.assert_array_equal(
                out.next_observation[i].cpu().numpy(), want.observation, err_msg=where
            )
            assert float(out.reward[i]) == want.reward, f"reward, {where}"
            assert bool(out.terminated[i]) == want.terminated, f"terminated, {where}"
            assert bool(out.truncated[i]) == want.truncated, f"truncated, {where}"
            after = start_observation if want.terminated or want.truncated else want.observation
            np.testing.assert_array_equal(
                observed[i].cpu().numpy(), after, err_msg=f"observe() after the step, {where}"
            )

    return prop


def tabular_matches_step(
    tabular: Callable[[spec.Params], TabularMDP] = spec.tabular,
) -> Callable[[], None]:
    """`P[s, a]` puts all mass on `spec.step`'s next cell and `R[s, a]` is its reward.

    Checked for every state and action of the layout; the goal is absorbing with reward 0.

    Assumes `tabular(params)` returns a `TabularMDP` with states indexed as `spec.index`
    (row-major) and deterministic moves; compared exactly. Accepts any builder with that
    indexing; one that numbers the cells differently is rejected.
    """

    @given(params=gridworld_params())
    def prop(params: spec.Params) -> None:
        mdp = tabular(params)
        goal = spec.index(params, *params.goal)
        assert mdp.terminal.tolist() == [s == goal for s in range(params.n_states)]
        for row in range(params.height):
            for col in range(params.width):
                s = spec.index(params, row, col)
                for a in range(spec.N_ACTIONS):
                    expected = np.zeros(params.n_states)
                    if s == goal:
                        expected[goal] = 1.0
                        reward = spec.GOAL_REWARD
                    else:
                        out = spec.step(params, spec.State(row, col), a)
                        expected[spec.index(params, out.state.row, out.state.col)] = 1.0
                        reward = out.reward
                    np.testing.assert_array_equal(mdp.P[s, a], expected, err_msg=f"P[{s}, {a}]")
                    assert mdp.R[s, a] == reward, f"R[{s}, {a}] = {mdp.R[s, a]}, step: {reward}"

    return prop


GAMMAS = st.one_of(st.just(0.0), st.floats(0.05, 0.99), st.just(1.0))
_VALUE = st.floats(-100.0, 100.0, allow_nan=False)


def shortest_path_values(params: spec.Params, gamma: float) -> np.ndarray:
    """The optimal values in closed form: `-(1 + gamma + ... + gamma^(d-2))` at distance `d`.

    Every cell is `d` Manhattan moves from the goal; the last move earns 0, the `d - 1` before it
    -1 each, discounted. The goal itself is worth 0.
    """
    values = np.zeros(params.n_states)
    for row in range(params.height):
        for col in range(params.width):
            distance = abs(row - params.goal[0]) + abs(col - params.goal[1])
            paid = max(distance - 1, 0)
            values[spec.index(params, row, col)] = -sum(gamma**k for k in range(paid))
    return values


def exact_values_match(
    policy_evaluation: Callable[[TabularMDP, np.ndarray, float], np.ndarray],
) -> Callable[[], None]:
    """Evaluating the greedy policy of the closed-form optimal values gives those values.

    `policy_evaluation(mdp, pi, gamma)` is the solver under test (e.g. `spec.mdp`'s linear
    solve); the grid's shortest-path values are known in closed form.

    Assumes GridWorld MDPs from `spec.tabular`, a one-hot policy toward the goal and `gamma` in
    `{0} | [0.05, 0.99] | {1}`; within `VALUE_TOL`. Accepts any solver (linear solve or
    iteration) that also handles `gamma = 1`, where every state reaches the absorbing goal.
    """

    @given(params=gridworld_params(), gamma=GAMMAS)
    def prop(params: spec.Params, gamma: float) -> None:
        mdp = spec.tabular(params)
        optimal = shortest_path_values(params, gamma)
        policy = _toward_goal(params)
        np.testing.assert_allclose(
            policy_evaluation(mdp, policy, gamma), optimal, rtol=VALUE_TOL, atol=VALUE_TOL
        )

    return prop


def _toward_goal(params: spec.Params) -> np.ndarray:
    """A one-hot policy `[S, 4]` that always moves one cell closer to the goal."""
    policy = np.zeros((params.n_states, spec.N_ACTIONS))
    for row in range(params.height):
        for col in range(params.width):
            d_row, d_col = params.goal[0] - row, params.goal[1] - col
            if d_row:
                action = spec.DOWN if d_row > 0 else spec.UP
            else:
                action = spec.RIGHT if d_col > 0 else spec.LEFT
            policy[spec.index(params, row, col), action] = 1.0
    return policy


def _ordered_values(data: st.DataObject, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two value vectors `v <= w` over `n` states."""
    v = np.array(data.draw(st.lists(_VALUE, min_size=n, max_size=n), label="v"))
    gap = np.array(data.draw(st.lists(st.floats(0.0, 100.0), min_size=n, max_size=n)))
    return v, v + gap


def _slack(w: np.ndarray) -> float:
    """The rounding allowed in the operator laws for `v <= w`: `VALUE_TOL` of `1 + |w|_inf`."""
    return VALUE_TOL * (1.0 + np.max(np.abs(w)))


def optimality_operator_laws(
    operator: Callable[[TabularMDP, np.ndarray, float], np.ndarray],
) -> Callable[[], None]:
    """A Bellman optimality operator on GridWorld: monotone, a gamma-contraction, fixes `v*`.

    `operator(mdp, v, gamma)` is the implementation under test; `v*` is the closed form of
    `shortest_path_values`, and the contraction is in the sup norm over all states.

    Assumes GridWorld MDPs from `spec.tabular`, value vectors in `[-100, 200]` and `gamma` as
    `exact_values_match`; the laws hold to `VALUE_TOL` of `1 + |w|_inf`. Accepts any
    vectorised or looped operator with `spec.mdp`'s convention for terminal states (worth 0, a
    step into one worth its reward alone).
    """

    @given(params=gridworld_params(), gamma=GAMMAS, data=st.data())
    def prop(params: spec.Params, gamma: float, data: st.DataObject) -> None:
        mdp = spec.tabular(params)
        v, w = _ordered_values(data, params.n_states)
        check_monotone_contraction(
            lambda u: operator(mdp, u, gamma), v, w, gamma, tol=_slack(w), what="T*"
        )
        optimal = shortest_path_values(params, gamma)
        np.testing.assert_allclose(
            operator(mdp, optimal, gamma), optimal, rtol=VALUE_TOL, atol=VALUE_TOL
        )

    return prop


def policy_operator_laws(
    operator: Callable[[TabularMDP, np.ndarray, np.ndarray, float], np.ndarray],
    policy_evaluation: Callable[[TabularMDP, np.ndarray, float], np.ndarray],
) -> Callable[[], None]:
    """A policy's Bellman operator on GridWorld: monotone, a gamma-contraction, fixes `v^pi`.

    `operator(mdp, pi, v, gamma)` and `policy_evaluation(mdp, pi, gamma)` are the
    implementations under test; `pi` is any stochastic policy that moves toward the goal with
    probability at least 1/2 in every cell, so that every state reaches the goal.

    Assumes GridWorld MDPs from `spec.tabular`, such policies, values in `[-100, 200]` and
    `gamma` in `[0.05, 0.99]`; to `VALUE_TOL`. Accepts any operator and solver that agree with
    each other and with the closed-form optimum as an upper bound.
    """

    @given(params=gridworld_params(), gamma=st.floats(0.05, 0.99), data=st.data())
    def prop(params: spec.Params, gamma: float, data: st.DataObject) -> None:
        mdp = spec.tabular(params)
        n = params.n_states
        weights = data.draw(
            st.lists(
                st.lists(st.floats(0.0, 1.0), min_size=spec.N_ACTIONS, max_size=spec.N_ACTIONS),
                min_size=n,
                max_size=n,
            ),
            label="weights",
        )
        wander = np.array(weights) + 1e-3
        policy = 0.5 * _toward_goal(params) + 0.5 * wander / wander.sum(axis=1, keepdims=True)
        v, w = _ordered_values(data, n)
        check_monotone_contraction(
            lambda u: operator(mdp, policy, u, gamma), v, w, gamma, tol=_slack(w), what="T^pi"
        )
        values = policy_evaluation(mdp, policy, gamma)
        np.testing.assert_allclose(
            operator(mdp, policy, values, gamma), values, rtol=VALUE_TOL, atol=VALUE_TOL
        )
        assert np.all(values <= shortest_path_values(params, gamma) + VALUE_TOL)

    return prop


def value_iteration_converges(
    value_iteration: Callable[..., tuple[np.ndarray, int]],
) -> Callable[[], None]:
    """`value_iteration(mdp, gamma, tol=0, max_iterations=k)` is within `gamma^k |v*|` of `v*`.

    Assumes the iteration starts from `v_0 = 0` and runs `k` sweeps when `tol = 0` (`k` up to
    30, `gamma` in `[0.05, 0.99]`), bound met to `VALUE_TOL`. Accepts synchronous and in-place
    (Gauss-Seidel) sweeps, which converge at least as fast; one starting elsewhere may be
    rejected although it converges.
    """

    @given(params=gridworld_params(), gamma=st.floats(0.05, 0.99), k=st.integers(0, 30))
    def prop(params: spec.Params, gamma: float, k: int) -> None:
        values, _ = value_iteration(spec.tabular(params), gamma, tol=0.0, max_iterations=k)
        optimal = shortest_path_values(params, gamma)
        error = np.max(np.abs(values - optimal))
        bound = gamma**k * np.max(np.abs(optimal))
        assert error <= bound + VALUE_TOL, f"after {k} sweeps |v_k - v*| = {error} > {bound}"

    return prop
