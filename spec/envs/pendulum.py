"""Pendulum: Gymnasium's `Pendulum-v1`, bit for bit, as pure functions.

A rigid pendulum hangs from a motor; the action is a torque, an array of shape `(1,)` clipped
to `[-max_torque, max_torque]`. With `th` the angle from upright, `w` the angular velocity and
`u` the clipped torque, one explicit-Euler step of `dt` is

    w'  = clip(w + (3 g / (2 l) sin(th) + 3 / (m l^2) u) dt, -max_speed, max_speed)
    th' = th + w' dt

(the angle is not wrapped). The reward is the negated cost of the state before the step,
`-(normalize(th)^2 + 0.1 w^2 + 0.001 u^2)`, with `normalize` mapping angles into `[-pi, pi)`:
never positive, and 0 only upright at rest without torque. The episode never terminates and is
truncated after 200 steps (the `TimeLimit` of `gymnasium.make("Pendulum-v1")`). Observations
are `[cos th, sin th, w]`.

Source: gymnasium/envs/classic_control/pendulum.py (`PendulumEnv`, `angle_normalize`). Its
operations and the types of their operands are kept: the state is float64, the clipped torque
keeps the action's dtype (so `0.001 u^2` is computed in float32 for a float32 action, as
upstream), observations are rounded to float32.
"""

from dataclasses import dataclass

import numpy as np

from checked_rl.spec.envs.base import Box, Environment, Step

OBSERVATION_SHAPE = (3,)
ACTION_SHAPE = (1,)


@dataclass(frozen=True)
class Params:
    """The constants of Pendulum-v1; every default is the upstream value.

    Source: gymnasium/envs/classic_control/pendulum.py, `PendulumEnv.__init__` (`g` is a
    constructor argument), `step`, `reset` (`DEFAULT_X`, `DEFAULT_Y`), and the registration of
    `Pendulum-v1` in gymnasium/envs/__init__.py.
    """

    max_speed: int = 8  # upstream `max_speed` (an int upstream, kept so)
    max_torque: float = 2.0  # upstream `max_torque`
    dt: float = 0.05  # upstream `dt`, seconds per step
    g: float = 10.0  # upstream `g`, m/s^2
    m: float = 1.0  # upstream `m`, kg
    l: float = 1.0  # noqa: E741 (upstream `l`, m)
    reset_angle: float = float(np.pi)  # upstream `DEFAULT_X`: angle uniform in [-pi, pi)
    reset_speed: float = 1.0  # upstream `DEFAULT_Y`: speed uniform in [-1, 1)
    max_episode_steps: int | None = 200  # `gym.make("Pendulum-v1")`'s TimeLimit

    def __post_init__(self) -> None:
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(
                "Pendulum Params.max_episode_steps must be None or at least 1, "
                f"got {self.max_episode_steps}"
            )

    @property
    def max_cost(self) -> float:
        """The largest cost of a step: `pi^2 + 0.1 max_speed^2 + 0.001 max_torque^2`, the last
        term the larger of its float64 and float32 values (`step` computes it in the action's
        dtype, as upstream).

        >>> round(Params().max_cost, 6)
        16.273604
        """
        torque32 = np.float32(self.max_torque)
        torque_cost = max(0.001 * self.max_torque**2, float(0.001 * torque32**2))
        return float(np.pi**2 + 0.1 * self.max_speed**2 + torque_cost)


@dataclass(frozen=True)
class State:
    """The float64 angle (from upright, not wrapped), angular velocity and step count."""

    theta: float
    theta_dot: float
    steps: int = 0

    def physics(self) -> np.ndarray:
        """The physical state as a float64 array `[theta, theta_dot]`."""
        return np.array((self.theta, self.theta_dot), dtype=np.float64)

    @classmethod
    def from_physics(cls, physics: np.ndarray, steps: int = 0) -> "State":
        """The state with physics `[theta, theta_dot]` and step count `steps`."""
        if np.shape(physics) != (2,):
            raise ValueError(
                "Pendulum State.from_physics: expected 2 entries [theta, theta_dot], "
                f"got shape {np.shape(physics)}"
            )
        return cls(float(physics[0]), float(physics[1]), int(steps))


def observation(state: State) -> np.ndarray:
    """`[cos theta, sin theta, theta_dot]`, computed in float64 and rounded to float32.

    >>> observation(State(0.0, -1.5)).tolist()
    [1.0, 0.0, -1.5]
    """
    theta, theta_dot = np.float64(state.theta), np.float64(state.theta_dot)
    return np.array([np.cos(theta), np.sin(theta), theta_dot], dtype=np.float32)


def angle_normalize(theta: np.float64) -> np.float64:
    """`theta` mapped into `[-pi, pi)` as upstream: `(theta + pi) % (2 pi) - pi`.

    >>> round(float(angle_normalize(np.float64(3 * np.pi / 2))), 12) == round(-np.pi / 2, 12)
    True
    """
    return (theta + np.pi) % (2 * np.pi) - np.pi


def reset(params: Params, rng: np.random.Generator) -> tuple[State, np.ndarray]:
    """Angle uniform in `[-reset_angle, reset_angle)`, speed in `[-reset_speed, reset_speed)`.

    With `rng = np.random.default_rng(seed)` this is Gymnasium's `reset(seed=seed)`: one
    `uniform` draw with array bounds `±[DEFAULT_X, DEFAULT_Y]`.

    >>> state, obs = reset(Params(), np.random.default_rng(0))
    >>> abs(state.theta) <= np.pi, abs(state.theta_dot) <= 1.0, obs.shape, obs.dtype
    (True, True, (3,), dtype('float32'))
    """
    high = np.array([params.reset_angle, params.reset_speed])
    theta, theta_dot = rng.uniform(low=-high, high=high)
    state = State(float(theta), float(theta_dot))
    return state, observation(state)


def step(params: Params, state: State, action: np.ndarray) -> Step[State]:
    """One step of Pendulum-v1 with the torque `action`, an array of shape `(1,)`.

    Hanging at rest (`th = pi`), a torque of 1 gives `w' = (15 sin(pi) + 3) 0.05 = 0.15`
    (to rounding), `th' = pi + 0.0075`; the cost is `pi^2 + 0.001`:

    >>> out = step(Params(), State(np.pi, 0.0), np.array([1.0]))
    >>> round(out.state.theta_dot, 9), round(out.state.theta - np.pi, 9)
    (0.15, 0.0075)
    >>> round(out.reward, 9) == round(-(np.pi**2 + 0.001), 9), out.terminated
    (True, False)
    """
    theta, theta_dot = np.float64(state.theta), np.float64(state.theta_dot)
    g, m, length, dt = params.g, params.m, params.l, params.dt
    torque = np.clip(action, -params.max_torque, params.max_torque)[0]
    costs = angle_normalize(theta) ** 2 + 0.1 * theta_dot**2 + 0.001 * torque**2
    new_theta_dot = (
        theta_dot + (3 * g / (2 * length) * np.sin(theta) + 3.0 / (m * length**2) * torque) * dt
    )
    new_theta_dot = np.clip(new_theta_dot, -params.max_speed, params.max_speed)
    new_theta = theta + new_theta_dot * dt
    new_state = State(float(new_theta), float(new_theta_dot), state.steps + 1)
    truncated = params.max_episode_steps is not None and new_state.steps >= params.max_episode_steps
    return Step(new_state, observation(new_state), float(-costs), False, truncated)


def observation_bounds(params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Gymnasium's observation `Box`: `±[1, 1, max_speed]` in float32."""
    high = np.array([1.0, 1.0, params.max_speed], dtype=np.float32)
    return -high, high


def action_space(params: Params) -> Box:
    """Gymnasium's action `Box`: shape `(1,)`, `[-max_torque, max_torque]`, float32."""
    return Box(ACTION_SHAPE, -params.max_torque, params.max_torque, np.float32)


def environment(params: Params | None = None) -> Environment[Params, State]:
    """Pendulum-v1 as a spec `Environment` (observations `(3,)` float32, actions a `(1,)`
    float32 box)."""
    params = Params() if params is None else params
    low, high = observation_bounds(params)
    return Environment(
        name="Pendulum-v1",
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
