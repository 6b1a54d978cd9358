"""Strategies for environments: CartPole states near the termination bounds, actions, GridWorlds.

CartPole physics are float64 arrays `[x, x_dot, theta, theta_dot]`: anywhere in a box a little
wider than the live region, or with x or theta within a hair of the thresholds (where the
strict inequalities of the termination test matter). Sizes are bounded by the constants below.
"""

import math

import numpy as np
from hypothesis import strategies as st

from checked_rl.spec.envs import cartpole, gridworld

__all__ = [
    "CARTPOLE_MAX_SPEED",
    "GRIDWORLD_MAX_SIDE",
    "MAX_ACTION_SEQUENCE",
    "MAX_BATCH",
    "SEEDS",
    "action_sequences",
    "cartpole_batches",
    "cartpole_physics",
    "cartpole_states",
    "gridworld_layouts",
    "gridworld_params",
    "gridworld_states",
]

MAX_BATCH = 8  # copies in a batched environment
MAX_ACTION_SEQUENCE = 60  # actions in one sequence
CARTPOLE_MAX_SPEED = 4.0  # |x_dot| and |theta_dot| bound; episodes rarely exceed ~3
GRIDWORLD_MAX_SIDE = 6  # width and height bound

SEEDS = st.integers(0, 2**31 - 1)
"""Seeds for `reset`: what `np.random.default_rng` and `torch.manual_seed` both accept."""

_X = cartpole.Params().x_threshold
_THETA = cartpole.Params().theta_threshold
_NEAR = 1e-3  # how far "near a bound" reaches, in metres or radians


def _near(bound: float) -> st.SearchStrategy[float]:
    """Values within `_NEAR` of `±bound`, the bound itself and its float neighbours included."""
    neighbours = [bound, math.nextafter(bound, 0.0), math.nextafter(bound, math.inf)]
    exact = st.sampled_from(neighbours + [-b for b in neighbours])
    offset = st.tuples(
        st.sampled_from([bound, -bound]), st.floats(-_NEAR, _NEAR, allow_nan=False)
    ).map(lambda pair: pair[0] + pair[1])
    return st.one_of(exact, offset)


def _speed() -> st.SearchStrategy[float]:
    return st.floats(-CARTPOLE_MAX_SPEED, CARTPOLE_MAX_SPEED, allow_nan=False)


def cartpole_physics() -> st.SearchStrategy[np.ndarray]:
    """float64 `[x, x_dot, theta, theta_dot]`: inside the bounds, near them, or just past them."""
    x = st.one_of(st.floats(-1.1 * _X, 1.1 * _X, allow_nan=False), _near(_X))
    theta = st.one_of(st.floats(-1.1 * _THETA, 1.1 * _THETA, allow_nan=False), _near(_THETA))
    return st.tuples(x, _speed(), theta, _speed()).map(lambda v: np.array(v, dtype=np.float64))


def cartpole_states(
    params: cartpole.Params | None = None,
) -> st.SearchStrategy[cartpole.State]:
    """Spec CartPole states with any physics from `cartpole_physics` and steps before the limit.

    Step counts favour the last steps before `params.max_episode_steps` (truncation).
    """
    params = cartpole.Params() if params is None else params
    limit = params.max_episode_steps or 10_000
    steps = st.one_of(st.integers(0, limit - 1), st.sampled_from([limit - 2, limit - 1]))
    return st.builds(
        lambda physics, n: cartpole.State.from_physics(physics, max(n, 0)),
        cartpole_physics(),
        steps,
    )


def cartpole_batches(
    max_batch: int = MAX_BATCH, params: cartpole.Params | None = None
) -> st.SearchStrategy[list[cartpole.State]]:
    """Between 1 and `max_batch` spec CartPole states, one per copy of a batched environment."""
    return st.lists(cartpole_states(params), min_size=1, max_size=max_batch)


def action_sequences(
    n_actions: int, *, min_size: int = 1, max_size: int = MAX_ACTION_SEQUENCE
) -> st.SearchStrategy[list[int]]:
    """Lists of actions in `0 .. n_actions - 1`."""
    return st.lists(st.integers(0, n_actions - 1), min_size=min_size, max_size=max_size)


@st.composite
def gridworld_layouts(
    draw: st.DrawFn, max_side: int = GRIDWORLD_MAX_SIDE
) -> tuple[int, int, tuple[int, int], tuple[int, int]]:
    """`(width, height, start, goal)` with distinct start and goal cells inside the grid."""
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(2 if width == 1 else 1, max_side))
    cells = [(row, col) for row in range(height) for col in range(width)]
    start, goal = draw(st.permutations(cells))[:2]
    return width, height, start, goal


@st.composite
def gridworld_params(draw: st.DrawFn, max_side: int = GRIDWORLD_MAX_SIDE) -> gridworld.Params:
    """Spec GridWorld parameters: any layout, either encoding, no limit or a short one."""
    width, height, start, goal = draw(gridworld_layouts(max_side))
    return gridworld.Params(
        width=width,
        height=height,
        start=start,
        goal=goal,
        observation=draw(st.sampled_from(gridworld.ENCODINGS)),
        max_episode_steps=draw(st.one_of(st.none(), st.integers(1, 2 * MAX_ACTION_SEQUENCE))),
    )


def gridworld_states(params: gridworld.Params) -> st.SearchStrategy[gridworld.State]:
    """Spec GridWorld states on any cell but the goal, steps before `params.max_episode_steps`."""
    limit = params.max_episode_steps or 1_000
    cells = [
        (row, col)
        for row in range(params.height)
        for col in range(params.width)
        if (row, col) != tuple(params.goal)
    ]
    return st.builds(
        lambda cell, steps: gridworld.State(cell[0], cell[1], steps),
        st.sampled_from(cells),
        st.integers(0, limit - 1),
    )
