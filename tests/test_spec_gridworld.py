"""spec GridWorld: dynamics, its tabular view, exact values and the Bellman laws on it."""

import numpy as np
import pytest
from hypothesis import Phase, given, settings

from checked_rl.properties.gridworld import (
    VALUE_TOL,
    exact_values_match,
    optimality_operator_laws,
    policy_operator_laws,
    shortest_path_values,
    tabular_matches_step,
    value_iteration_converges,
)
from checked_rl.properties.strategies.envs import (
    action_sequences,
    gridworld_layouts,
    gridworld_params,
)
from checked_rl.spec import mdp
from checked_rl.spec.envs import gridworld

test_tabular_view_matches_step = tabular_matches_step(gridworld.tabular)
test_linear_solve_gives_shortest_path_values = exact_values_match(mdp.policy_evaluation)
test_optimality_operator_laws = optimality_operator_laws(mdp.bellman_optimality_operator)
test_value_iteration_within_gamma_k = value_iteration_converges(mdp.value_iteration)
test_policy_operator_laws = policy_operator_laws(mdp.bellman_policy_operator, mdp.policy_evaluation)


def test_four_by_four_values_by_hand() -> None:
    """From (0, 0) the goal (3, 3) is 6 moves away: 5 of them cost -1."""
    params = gridworld.Params()
    values = mdp.value_iteration(gridworld.tabular(params), gamma=1.0).values
    assert values[gridworld.index(params, 0, 0)] == pytest.approx(-5.0, abs=VALUE_TOL)
    assert values[gridworld.index(params, 3, 2)] == pytest.approx(0.0, abs=VALUE_TOL)
    assert values[gridworld.index(params, 3, 3)] == 0.0
    discounted = mdp.value_iteration(gridworld.tabular(params), gamma=0.5).values
    assert discounted[0] == pytest.approx(-(1 + 0.5 + 0.25 + 0.125 + 0.0625), abs=1e-9)


@given(params=gridworld_params())
def test_policy_iteration_finds_shortest_paths(params: gridworld.Params) -> None:
    _, values = mdp.policy_iteration(gridworld.tabular(params), gamma=0.9)
    np.testing.assert_allclose(values, shortest_path_values(params, 0.9), atol=VALUE_TOL)


@given(params=gridworld_params(), actions=action_sequences(gridworld.N_ACTIONS))
def test_episode_rewards_count_moves(params: gridworld.Params, actions: list[int]) -> None:
    """The undiscounted return is minus the moves before the last; cells stay in the grid."""
    state, obs = gridworld.reset(params, np.random.default_rng(0))
    assert obs.shape == params.observation_shape and obs.dtype == np.float32
    low, high = gridworld.observation_bounds(params)
    total, steps = 0.0, 0
    for action in actions:
        out = gridworld.step(params, state, action)
        total, steps, state = total + out.reward, steps + 1, out.state
        assert 0 <= state.row < params.height and 0 <= state.col < params.width
        assert state.steps == steps
        assert np.all(low <= out.observation) and np.all(out.observation <= high)
        if out.terminated:
            assert (state.row, state.col) == params.goal and out.reward == 0.0
            assert total == -(steps - 1)
            return
        assert out.reward == -1.0 and (state.row, state.col) != params.goal
        limit = params.max_episode_steps
        assert out.truncated == (limit is not None and steps >= limit)
        if out.truncated:
            return


@given(layout=gridworld_layouts())
def test_one_hot_and_coordinates_encode_the_same_cell(layout) -> None:
    width, height, start, goal = layout
    one_hot = gridworld.Params(width, height, start, goal, observation="one_hot")
    coordinates = gridworld.Params(width, height, start, goal, observation="coordinates")
    for row in range(height):
        for col in range(width):
            state = gridworld.State(row, col)
            hot = gridworld.observation(one_hot, state)
            assert hot.sum() == 1.0 and hot.argmax() == row * width + col
            assert gridworld.observation(coordinates, state).tolist() == [row, col]


def test_environment_record() -> None:
    env = gridworld.environment(gridworld.Params(width=3, height=2, goal=(1, 2)))
    assert env.observation_shape == (6,) and env.n_actions == 4
    assert env.observation_low.tolist() == [0.0] * 6 and env.observation_high.tolist() == [1.0] * 6
    state, obs = env.reset(np.random.default_rng(1))
    assert (state.row, state.col, state.steps) == (0, 0, 0) and obs.tolist()[0] == 1.0
    coords = gridworld.environment(
        gridworld.Params(width=3, height=2, goal=(1, 2), observation="coordinates")
    )
    assert coords.observation_shape == (2,) and coords.observation_high.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 1, "height": 1, "goal": (0, 0)}, "at least two cells"),
        ({"start": (4, 0)}, "Params.start must be a"),
        ({"goal": (0, 0)}, "start and goal must differ"),
        ({"observation": "pixels"}, "observation must be one of"),
        ({"max_episode_steps": 0}, "max_episode_steps must be None or at least 1"),
    ],
)
def test_invalid_params_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gridworld.Params(**kwargs)


def test_operator_laws_catch_an_operator_that_is_no_contraction() -> None:
    def expanding(tabular: mdp.TabularMDP, values: np.ndarray, gamma: float) -> np.ndarray:
        # Fixes v* as the true operator does, but moves any other v twice as far from T v:
        # |T'u - T'w| >= (2 - gamma) |u - w|, so only the contraction law can catch it.
        applied = mdp.bellman_optimality_operator(tabular, values, gamma)
        return applied + 2.0 * (values - applied)

    prop = optimality_operator_laws(expanding)
    with pytest.raises(AssertionError, match=r"T\*: \|Tu - Tw\|"):
        settings(max_examples=200, database=None, phases=[Phase.generate])(prop)()
