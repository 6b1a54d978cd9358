"""MountainCar: Gymnasium's `MountainCar-v0`, bit for bit, as pure functions.

An underpowered car sits in a valley between two hills on the curve `y = sin(3 x)` and must
reach the flag on the right hill. Each step applies action 0 (push left), 1 (no push) or
2 (push right); Moore's (1990) dynamics, with `p` the position and `v` the velocity:

    v' = clip(v + (a - 1) force - cos(3 p) gravity, -max_speed, max_speed)
    p' = clip(p + v', min_position, max_position);   v' = 0 if p' = min_position and v' < 0

The reward is -1 on every step. The episode terminates when `p' >= goal_position` and
`v' >= goal_velocity`, and is truncated after 200 steps (the `TimeLimit` of
`gymnasium.make("MountainCar-v0")`).

Source: gymnasium/envs/classic_control/mountain_car.py (`MountainCarEnv`). Its operations, and
the order and types of their operands, are kept here (`math.cos` on a float64 position,
`np.clip`), so that observations agree bit for bit: the state is float64, observations are the
state rounded to float32.
"""

import math
from dataclasses import dataclass

import numpy as np

from checked_rl.spec.envs.base import Environment, Step

OBSERVATION_SHAPE = (2,)
N_ACTIONS = 3


@dataclass(frozen=True)
class Params:
    """The constants of MountainCar-v0; every default is the upstream value.

    Source: gymnasium/envs/classic_control/mountain_car.py, `MountainCarEnv.__init__`, `reset`
    and the registration of `MountainCar-v0` in gymnasium/envs/__init__.py.
    """

    min_position: float = -1.2  # upstream `min_position`
    max_position: float = 0.6  # upstream `max_position`
    max_speed: float = 0.07  # upstream `max_speed`
    goal_position: float = 0.5  # upstream `goal_position`
    goal_velocity: float = 0.0  # upstream `goal_velocity` (a constructor argument, default 0)
    force: float = 0.001  # upstream `force`, velocity change per step of a push
    gravity: float = 0.0025  # upstream `gravity`
    reset_low: float = -0.6  # upstream reset draws the position uniform in [-0.6, -0.4)
    reset_high: float = -0.4
    max_episode_steps: int | None = 200  # `gym.make("MountainCar-v0")`'s TimeLimit

    def __post_init__(self) -> None:
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(
                "MountainCar Params.max_episode_steps must be None or at least 1, "
                f"got {self.max_episode_steps}"
            )


@dataclass(frozen=True)
class State:
    """The float64 position and velocity and the number of steps taken in this episode."""

    position: float
    velocity: float
    steps: int = 0

    def physics(self) -> np.ndarray:
        """The physical state as a float64 array `[position, velocity]`."""
        return np.array((self.position, self.velocity), dtype=np.float64)

    @classmethod
    def from_physics(cls, physics: np.ndarray, steps: int = 0) -> "State":
        """The state with physics `[position, velocity]` and step count `steps`."""
        if np.shape(physics) != OBSERVATION_SHAPE:
            raise ValueError(
                "MountainCar State.from_physics: expected 2 entries [position, velocity], "
                f"got shape {np.shape(physics)}"
            )
        return cls(float(physics[0]), float(physics[1]), int(steps))


def observation(state: State) -> np.ndarray:
    """`[position, velocity]` rounded to float32."""
    return np.array((state.position, state.velocity), dtype=np.float32)


def reset(params: Params, rng: np.random.Generator) -> tuple[State, np.ndarray]:
    """The position uniform in `[reset_low, reset_high)`, velocity 0.

    With `rng = np.random.default_rng(seed)` this is Gymnasium's `reset(seed=seed)`: one scalar
    `uniform` draw.

    >>> state, obs = reset(Params(), np.random.default_rng(0))
    >>> -0.6 <= state.position < -0.4, state.velocity, state.steps, obs.dtype
    (True, 0.0, 0, dtype('float32'))
    """
    position = rng.uniform(low=params.reset_low, high=params.reset_high)
    state = State(float(position), 0.0)
    return state, observation(state)


def step(params: Params, state: State, action: int) -> Step[State]:
    """One step of MountainCar-v0 with `action` 0 (left), 1 (none) or 2 (right).

    From rest at the valley floor `p = -pi/6`, where `cos(3 p) = 0`, pushing right gains
    exactly one `force` of velocity:

    >>> out = step(Params(), State(-math.pi / 6, 0.0), 2)
    >>> round(out.state.velocity, 12), round(out.state.position + math.pi / 6, 12), out.reward
    (0.001, 0.001, -1.0)

    At the left wall the velocity is set to 0:

    >>> out = step(Params(), State(-1.2, -0.01), 0)
    >>> out.state.position, out.state.velocity
    (-1.2, 0.0)
    """
    position, velocity = np.float64(state.position), np.float64(state.velocity)
    velocity += (action - 1) * params.force + math.cos(3 * position) * -params.gravity
    velocity = np.clip(velocity, -params.max_speed, params.max_speed)
    position += velocity
    position = np.clip(position, params.min_position, params.max_position)
    if position == params.min_position and velocity < 0:
        velocity = np.float64(0.0)
    terminated = bool(position >= params.goal_position and velocity >= params.goal_velocity)
    new_state = State(float(position), float(velocity), state.steps + 1)
    truncated = params.max_episode_steps is not None and new_state.steps >= params.max_episode_steps
    return Step(new_state, observation(new_state), -1.0, terminated, truncated)


def observation_bounds(params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Gymnasium's observation `Box`: `[min_position, -max_speed]` to
    `[max_position, max_speed]` in float32."""
    low = np.array([params.min_position, -params.max_speed], dtype=np.float32)
    high = np.array([params.max_position, params.max_speed], dtype=np.float32)
    return low, high


def environment(params: Params | None = None) -> Environment[Params, State]:
    """MountainCar-v0 as a spec `Environment` (observations `(2,)` float32, 3 actions)."""
    params = Params() if params is None else params
    low, high = observation_bounds(params)
    return Environment(
        name="MountainCar-v0",
        params=params,
        reset_fn=reset,
        step_fn=step,
        observation_shape=OBSERVATION_SHAPE,
        observation_dtype=np.dtype(np.float32),
        n_actions=N_ACTIONS,
        observation_low=low,
        observation_high=high,
    )
