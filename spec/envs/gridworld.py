"""GridWorld: TorchLean's tabular example, with its exact tabular view.

A `width x height` grid of cells `(row, col)`, row 0 at the top. The agent starts in `start` and
moves up, down, left or right; a move into the border leaves it where it is. Every step costs -1
except the one that reaches `goal`, which earns 0 and terminates the episode. The dynamics never
truncate; `Params.max_episode_steps` (None by default) optionally cuts an episode after that
many steps.

Cell `(row, col)` is state `row * width + col` in the tabular view (`tabular`), where the goal
is absorbing with reward 0, so its value is 0 and every other state's value under the optimal
policy is minus the discounted number of moves before the last one.

Observations (`Params.observation`):

- `"one_hot"` (default): float32 `[width * height]`, 1 at the state index, 0 elsewhere;
- `"coordinates"`: float32 `[2]`, `(row, col)`.

Source: TorchLean's RL GridWorld example (grid, clamped moves, -1 per move, terminal goal).
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np

from checked_rl.spec.envs.base import Environment, Step
from checked_rl.spec.mdp import TabularMDP

Encoding = Literal["one_hot", "coordinates"]
ENCODINGS: tuple[Encoding, ...] = ("one_hot", "coordinates")

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3
N_ACTIONS = 4
MOVES: tuple[tuple[int, int], ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (d_row, d_col)
STEP_REWARD = -1.0  # every move that does not reach the goal
GOAL_REWARD = 0.0  # the move that reaches the goal, and every step from the absorbing goal


@dataclass(frozen=True)
class Params:
    """The layout of a GridWorld and the encoding of its observations."""

    width: int = 4  # number of columns
    height: int = 4  # number of rows
    start: tuple[int, int] = (0, 0)  # (row, col) of every initial state
    goal: tuple[int, int] = (3, 3)  # (row, col) of the terminal cell
    observation: Encoding = "one_hot"  # see the module docstring
    max_episode_steps: int | None = None  # None: never truncated; n: truncated after n steps

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1 or self.width * self.height < 2:
            raise ValueError(
                f"GridWorld needs at least two cells, got width {self.width}, height {self.height}"
            )
        for name, (row, col) in (("start", self.start), ("goal", self.goal)):
            if not (0 <= row < self.height and 0 <= col < self.width):
                raise ValueError(
                    f"GridWorld Params.{name} must be a (row, col) inside the "
                    f"{self.height} x {self.width} grid, got {(row, col)}"
                )
        if tuple(self.start) == tuple(self.goal):
            raise ValueError(f"GridWorld Params.start and goal must differ, both are {self.start}")
        if self.observation not in ENCODINGS:
            raise ValueError(
                f"GridWorld Params.observation must be one of {ENCODINGS}, got {self.observation!r}"
            )
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(
                "GridWorld Params.max_episode_steps must be None or at least 1, "
                f"got {self.max_episode_steps}"
            )

    @property
    def n_states(self) -> int:
        """The number of cells, `width * height`."""
        return self.width * self.height

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """`(width * height,)` for one-hot observations, `(2,)` for coordinates."""
        return (self.n_states,) if self.observation == "one_hot" else (2,)


@dataclass(frozen=True)
class State:
    """The agent's cell and the number of steps taken in this episode."""

    row: int
    col: int
    steps: int = 0


def index(params: Params, row: int, col: int) -> int:
    """The tabular state index of cell `(row, col)`: `row * width + col`.

    >>> index(Params(width=4, height=3, goal=(2, 3)), 2, 1)
    9
    """
    return row * params.width + col


def move(params: Params, row: int, col: int, action: int) -> tuple[int, int]:
    """The cell reached from `(row, col)` by `action`, clamped at the borders.

    >>> move(Params(), 0, 0, UP), move(Params(), 0, 0, DOWN), move(Params(), 0, 3, RIGHT)
    ((0, 0), (1, 0), (0, 3))
    """
    d_row, d_col = MOVES[action]
    return (
        min(max(row + d_row, 0), params.height - 1),
        min(max(col + d_col, 0), params.width - 1),
    )


def observation(params: Params, state: State) -> np.ndarray:
    """The float32 observation of `state` in `params.observation` encoding.

    >>> observation(Params(width=3, height=1, goal=(0, 2)), State(0, 1)).tolist()
    [0.0, 1.0, 0.0]
    >>> observation(Params(observation="coordinates"), State(2, 1)).tolist()
    [2.0, 1.0]
    """
    if params.observation == "coordinates":
        return np.array((state.row, state.col), dtype=np.float32)
    one_hot = np.zeros(params.n_states, dtype=np.float32)
    one_hot[index(params, state.row, state.col)] = 1.0
    return one_hot


def reset(params: Params, rng: np.random.Generator) -> tuple[State, np.ndarray]:
    """Start in `params.start`; the start is fixed, so `rng` is not used."""
    del rng
    state = State(params.start[0], params.start[1], 0)
    return state, observation(params, state)


def step(params: Params, state: State, action: int) -> Step[State]:
    """Move by `action` (0 up, 1 down, 2 left, 3 right); -1, or 0 and terminated at the goal.

    >>> p = Params(width=2, height=1, start=(0, 0), goal=(0, 1))
    >>> out = step(p, State(0, 0), LEFT)
    >>> out.state, out.reward, out.terminated
    (State(row=0, col=0, steps=1), -1.0, False)
    >>> out = step(p, out.state, RIGHT)
    >>> out.state, out.reward, out.terminated, out.truncated
    (State(row=0, col=1, steps=2), 0.0, True, False)
    """
    row, col = move(params, state.row, state.col, action)
    new_state = State(row, col, state.steps + 1)
    terminated = (row, col) == tuple(params.goal)
    truncated = params.max_episode_steps is not None and new_state.steps >= params.max_episode_steps
    return Step(
        state=new_state,
        observation=observation(params, new_state),
        reward=GOAL_REWARD if terminated else STEP_REWARD,
        terminated=terminated,
        truncated=truncated,
    )


def tabular(params: Params) -> TabularMDP:
    """The exact MDP: `P[s, a, s']` deterministic moves, `R[s, a]`, the goal absorbing and terminal.

    Step counts and `max_episode_steps` are not part of the tabular state: this is the MDP of the
    untruncated dynamics.

    >>> mdp = tabular(Params(width=2, height=1, start=(0, 0), goal=(0, 1)))
    >>> mdp.P[0, RIGHT].tolist(), mdp.R[0].tolist(), mdp.terminal.tolist()
    ([0.0, 1.0], [-1.0, -1.0, -1.0, 0.0], [False, True])
    >>> mdp.P[1, LEFT].tolist(), mdp.R[1].tolist()
    ([0.0, 1.0], [0.0, 0.0, 0.0, 0.0])
    """
    n = params.n_states
    goal = index(params, *params.goal)
    transitions = np.zeros((n, N_ACTIONS, n))
    rewards = np.zeros((n, N_ACTIONS))
    for row in range(params.height):
        for col in range(params.width):
            s = index(params, row, col)
            for a in range(N_ACTIONS):
                if s == goal:
                    transitions[s, a, s] = 1.0
                    rewards[s, a] = GOAL_REWARD
                    continue
                s_next = index(params, *move(params, row, col, a))
                transitions[s, a, s_next] = 1.0
                rewards[s, a] = GOAL_REWARD if s_next == goal else STEP_REWARD
    terminal = np.zeros(n, dtype=np.bool_)
    terminal[goal] = True
    return TabularMDP(P=transitions, R=rewards, terminal=terminal)


def observation_bounds(params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Closed float32 bounds: `[0, 1]` one-hot, `[0, height-1] x [0, width-1]` coordinates."""
    if params.observation == "one_hot":
        shape = params.observation_shape
        return np.zeros(shape, dtype=np.float32), np.ones(shape, dtype=np.float32)
    high = np.array((params.height - 1, params.width - 1), dtype=np.float32)
    return np.zeros(2, dtype=np.float32), high


def environment(params: Params | None = None) -> Environment[Params, State]:
    """GridWorld as a spec `Environment` (4 actions, observation encoding from `params`)."""
    params = Params() if params is None else params
    low, high = observation_bounds(params)
    return Environment(
        name=f"GridWorld-{params.height}x{params.width}",
        params=params,
        reset_fn=reset,
        step_fn=step,
        observation_shape=params.observation_shape,
        observation_dtype=np.dtype(np.float32),
        n_actions=N_ACTIONS,
        observation_low=low,
        observation_high=high,
    )
