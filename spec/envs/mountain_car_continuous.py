"""MountainCarContinuous: Gymnasium's `MountainCarContinuous-v0`, bit for bit, as pure functions.

The car of `spec.envs.mountain_car`, pushed with a continuous force: the action is an array of
shape `(1,)`, clipped to `[min_action, max_action]`. With `p`, `v` the position and velocity
and `f = clip(a[0], -1, 1)`:

    v' = clip(v + f power - 0.0025 cos(3 p), -max_speed, max_speed)
    p' = clip(p + v', min_position, max_position);   v' = 0 if p' = min_position and v' < 0

The episode terminates when `p' >= goal_position` and `v' >= goal_velocity`; the reward is
`100` on termination minus `0.1 a[0]^2` on every step (the unclipped action's square). The
episode is truncated after 999 steps (the `TimeLimit` of `gym.make(...)`).

Source: gymnasium/envs/classic_control/continuous_mountain_car.py (`Continuous_MountainCarEnv`).
Upstream stores the state as float32 after every step, while a reset state is float64, and
NumPy's promotion rules then decide the precision of each operation from the operands' types
(a float32 force times a Python float stays float32). `step` therefore works on NumPy scalars
of the types upstream has (`State.single` says which) and keeps the order of the operations,
so that observations and rewards agree bit for bit, for float32 and float64 actions alike.
"""

import math
from dataclasses import dataclass

import numpy as np

from checked_rl.spec.envs.base import Box, Environment, Step

OBSERVATION_SHAPE = (2,)
ACTION_SHAPE = (1,)


@dataclass(frozen=True)
class Params:
    """The constants of MountainCarContinuous-v0; every default is the upstream value.

    Source: gymnasium/envs/classic_control/continuous_mountain_car.py,
    `Continuous_MountainCarEnv.__init__`, `step` and `reset`, and the registration of
    `MountainCarContinuous-v0` in gymnasium/envs/__init__.py.
    """

    min_action: float = -1.0  # upstream `min_action`
    max_action: float = 1.0  # upstream `max_action`
    min_position: float = -1.2  # upstream `min_position`
    max_position: float = 0.6  # upstream `max_position`
    max_speed: float = 0.07  # upstream `max_speed`
    goal_position: float = 0.45  # upstream `goal_position`
    goal_velocity: float = 0.0  # upstream `goal_velocity` (a constructor argument, default 0)
    power: float = 0.0015  # upstream `power`
    gravity: float = 0.0025  # the literal factor of `cos(3 p)` in upstream `step`
    goal_reward: float = 100.0  # upstream reward on termination
    action_cost: float = 0.1  # upstream factor of `a[0]^2` in the reward
    reset_low: float = -0.6  # upstream reset draws the position uniform in [-0.6, -0.4)
    reset_high: float = -0.4
    max_episode_steps: int | None = 999  # `gym.make("MountainCarContinuous-v0")`'s TimeLimit

    def __post_init__(self) -> None:
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(
                "MountainCarContinuous Params.max_episode_steps must be None or at least 1, "
                f"got {self.max_episode_steps}"
            )


@dataclass(frozen=True)
class State:
    """The position, velocity, step count, and whether upstream holds the state in float32.

    `single` is False after a reset (upstream's reset state is a float64 array) and True after
    every step (upstream stores `np.array([position, velocity], dtype=np.float32)`); the
    values are then float32 numbers.
    """

    position: float
    velocity: float
    steps: int = 0
    single: bool = False

    def physics(self) -> np.ndarray:
        """The physical state as a float64 array `[position, velocity]`."""
        return np.array((self.position, self.velocity), dtype=np.float64)

    @classmethod
    def from_physics(cls, physics: np.ndarray, steps: int = 0, single: bool = False) -> "State":
        """The state with physics `[position, velocity]`, rounded to float32 when `single`."""
        if np.shape(physics) != OBSERVATION_SHAPE:
            raise ValueError(
                "MountainCarContinuous State.from_physics: expected 2 entries "
                f"[position, velocity], got shape {np.shape(physics)}"
            )
        values = np.asarray(physics, dtype=np.float32 if single else np.float64)
        return cls(float(values[0]), float(values[1]), int(steps), bool(single))


def observation(state: State) -> np.ndarray:
    """`[position, velocity]` rounded to float32."""
    return np.array((state.position, state.velocity), dtype=np.float32)


def reset(params: Params, rng: np.random.Generator) -> tuple[State, np.ndarray]:
    """The position uniform in `[reset_low, reset_high)`, velocity 0 (Gymnasium's draw).

    >>> state, obs = reset(Params(), np.random.default_rng(0))
    >>> -0.6 <= state.position < -0.4, state.velocity, state.single, obs.dtype
    (True, 0.0, False, dtype('float32'))
    """
    position = rng.uniform(low=params.reset_low, high=params.reset_high)
    state = State(float(position), 0.0)
    return state, observation(state)


def step(params: Params, state: State, action: np.ndarray) -> Step[State]:
    """One step of MountainCarContinuous-v0 with `action`, an array of shape `(1,)`.

    The force is `action[0]` clipped to `[min_action, max_action]`; the reward charges the
    unclipped action. At the valley floor `p = -pi/6` (`cos(3 p) = 0`) a float64 push of 2 is
    clipped to 1 and gains `power` of velocity, and costs `0.1 * 2^2`:

    >>> out = step(Params(), State(-math.pi / 6, 0.0), np.array([2.0]))
    >>> round(out.state.velocity, 7), round(out.reward, 12), out.state.single
    (0.0015, -0.4, True)
    """
    real = np.float32 if state.single else np.float64
    position, velocity = real(state.position), real(state.velocity)
    push = action[0]
    force = min(max(push, params.min_action), params.max_action)
    velocity += force * params.power - params.gravity * math.cos(3 * position)
    if velocity > params.max_speed:
        velocity = params.max_speed
    if velocity < -params.max_speed:
        velocity = -params.max_speed
    position += velocity
    if position > params.max_position:
        position = params.max_position
    if position < params.min_position:
        position = params.min_position
    if position == params.min_position and velocity < 0:
        velocity = 0
    terminated = bool(position >= params.goal_position and velocity >= params.goal_velocity)
    reward = params.goal_reward if terminated else 0
    reward -= math.pow(push, 2) * params.action_cost
    stored = np.array([position, velocity], dtype=np.float32)
    new_state = State(float(stored[0]), float(stored[1]), state.steps + 1, single=True)
    truncated = params.max_episode_steps is not None and new_state.steps >= params.max_episode_steps
    return Step(new_state, stored, float(reward), terminated, truncated)


def observation_bounds(params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Gymnasium's observation `Box`: `[min_position, -max_speed]` to
    `[max_position, max_speed]` in float32."""
    low = np.array([params.min_position, -params.max_speed], dtype=np.float32)
    high = np.array([params.max_position, params.max_speed], dtype=np.float32)
    return low, high


def action_space(params: Params) -> Box:
    """Gymnasium's action `Box`: shape `(1,)`, `[min_action, max_action]`, float32."""
    return Box(ACTION_SHAPE, params.min_action, params.max_action, np.float32)


def environment(params: Params | None = None) -> Environment[Params, State]:
    """MountainCarContinuous-v0 as a spec `Environment` (observations `(2,)` float32, actions a
    `(1,)` float32 box)."""
    params = Params() if params is None else params
    low, high = observation_bounds(params)
    return Environment(
        name="MountainCarContinuous-v0",
        params=params,
        reset_fn=reset,
        step_fn=step,
        observation_shape=OBSERVATION_SHAPE,
        observation_dtype=np.dtype(np.float32),
        n_actions=None,
        observation_low=low,
        observation_high=high,
        action_space=action_space(params),
    )
