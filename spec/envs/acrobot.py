"""Acrobot: Gymnasium's `Acrobot-v1`, bit for bit, as pure functions.

Two links hang in a chain from a fixed joint; the actuated joint between them takes a torque of
-1, 0 or +1 (actions 0, 1, 2). With `th1`, `th2` the joint angles (0 pointing down), `w1`, `w2`
their velocities and `tau` the torque, Sutton and Barto's ("book") dynamics are

    d1   = m1 lc1^2 + m2 (l1^2 + lc2^2 + 2 l1 lc2 cos th2) + I1 + I2
    d2   = m2 (lc2^2 + l1 lc2 cos th2) + I2
    phi2 = m2 lc2 g cos(th1 + th2 - pi/2)
    phi1 = -m2 l1 lc2 w2^2 sin th2 - 2 m2 l1 lc2 w2 w1 sin th2 + (m1 lc1 + m2 l1) g cos(th1 - pi/2)
           + phi2
    w2'  = (tau + d2/d1 phi1 - m2 l1 lc2 w1^2 sin th2 - phi2) / (m2 lc2^2 + I2 - d2^2/d1)
    w1'  = -(d2 w2' + phi1) / d1

(the "nips" variant drops the `w1^2` term of `w2'`), integrated over `dt` by one classical
Runge-Kutta (RK4) step; the angles are then wrapped into `[-pi, pi]` and the velocities clipped
to `±max_vel_1`, `±max_vel_2`. The reward is -1 per step and 0 on the step that terminates,
when the free end rises above the bar: `-cos th1 - cos(th1 + th2) > 1`. The episode is
truncated after 500 steps (the `TimeLimit` of `gymnasium.make("Acrobot-v1")`). Observations are
`[cos th1, sin th1, cos th2, sin th2, w1, w2]`.

Source: gymnasium/envs/classic_control/acrobot.py (`AcrobotEnv`, `rk4`, `wrap`, `bound`). Its
operations, their order and the types of their operands are kept, so that observations agree
bit for bit: upstream rounds the reset state to float32 (and computes the first observation's
cosines in float32), then integrates in float64.

Torque noise (`torque_noise_max > 0`) is drawn uniform in `±torque_noise_max` at every step
from a generator that the state carries (`State.noise`, a NumPy bit-generator state taken from
the reset's generator right after the reset draw), so `step` stays a pure function and an
episode from `reset(seed=seed)` is upstream's. Unlike upstream, the noise draws do not advance
the generator that draws the next reset.
"""

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from checked_rl.spec.envs.base import Environment, Step

Dynamics = Literal["book", "nips"]

DYNAMICS: tuple[Dynamics, ...] = ("book", "nips")
OBSERVATION_SHAPE = (6,)
N_ACTIONS = 3


@dataclass(frozen=True)
class Params:
    """The constants of Acrobot-v1; every default is the upstream value.

    Source: gymnasium/envs/classic_control/acrobot.py, the class attributes of `AcrobotEnv`,
    `_dsdt` (gravity), `reset`, and the registration of `Acrobot-v1` in gymnasium/envs/__init__.py.
    """

    dt: float = 0.2  # upstream `dt`, s
    link_length_1: float = 1.0  # upstream `LINK_LENGTH_1`, m
    link_mass_1: float = 1.0  # upstream `LINK_MASS_1`, kg
    link_mass_2: float = 1.0  # upstream `LINK_MASS_2`, kg
    link_com_pos_1: float = 0.5  # upstream `LINK_COM_POS_1`, m
    link_com_pos_2: float = 0.5  # upstream `LINK_COM_POS_2`, m
    link_moi: float = 1.0  # upstream `LINK_MOI`, both links
    max_vel_1: float = 4 * math.pi  # upstream `MAX_VEL_1`
    max_vel_2: float = 9 * math.pi  # upstream `MAX_VEL_2`
    torques: tuple[float, float, float] = (-1.0, 0.0, 1.0)  # upstream `AVAIL_TORQUE`
    torque_noise_max: float = 0.0  # upstream `torque_noise_max`
    dynamics: Dynamics = "book"  # upstream `book_or_nips`
    gravity: float = 9.8  # upstream `g` in `_dsdt`
    reset_bound: float = 0.1  # upstream reset draws each state entry uniform in [-0.1, 0.1)
    max_episode_steps: int | None = 500  # `gym.make("Acrobot-v1")`'s TimeLimit

    def __post_init__(self) -> None:
        if self.dynamics not in DYNAMICS:
            raise ValueError(
                f"Acrobot Params.dynamics must be one of {DYNAMICS}, got {self.dynamics!r}"
            )
        if len(self.torques) != N_ACTIONS or not self.torque_noise_max >= 0:
            raise ValueError(
                "Acrobot Params: torques must hold 3 values and torque_noise_max be >= 0, "
                f"got {self.torques} and {self.torque_noise_max}"
            )
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(
                "Acrobot Params.max_episode_steps must be None or at least 1, "
                f"got {self.max_episode_steps}"
            )


@dataclass(frozen=True)
class State:
    """The float64 joint angles and velocities, the step count, and the noise generator state."""

    theta1: float
    theta2: float
    dtheta1: float
    dtheta2: float
    steps: int = 0
    noise: dict[str, Any] | None = None  # a PCG64 `bit_generator.state` when there is noise

    def physics(self) -> np.ndarray:
        """The physical state as a float64 array `[theta1, theta2, dtheta1, dtheta2]`."""
        return np.array((self.theta1, self.theta2, self.dtheta1, self.dtheta2), dtype=np.float64)

    @classmethod
    def from_physics(cls, physics: np.ndarray, steps: int = 0) -> "State":
        """The noiseless state with physics `[theta1, theta2, dtheta1, dtheta2]`."""
        if np.shape(physics) != (4,):
            raise ValueError(
                "Acrobot State.from_physics: expected 4 entries [theta1, theta2, dtheta1, "
                f"dtheta2], got shape {np.shape(physics)}"
            )
        theta1, theta2, dtheta1, dtheta2 = (float(v) for v in physics)
        return cls(theta1, theta2, dtheta1, dtheta2, int(steps))


def _observe(values: np.ndarray) -> np.ndarray:
    """Upstream's observation of a state array, in the array's own precision, then float32."""
    theta1, theta2, dtheta1, dtheta2 = values
    return np.array(
        [np.cos(theta1), np.sin(theta1), np.cos(theta2), np.sin(theta2), dtheta1, dtheta2],
        dtype=np.float32,
    )


def observation(state: State) -> np.ndarray:
    """`[cos th1, sin th1, cos th2, sin th2, w1, w2]` computed in float64, rounded to float32.

    (A reset's observation is computed from the float32 state, as upstream: see `reset`.)

    >>> observation(State(0.0, 0.0, 1.0, -2.0)).tolist()
    [1.0, 0.0, 1.0, 0.0, 1.0, -2.0]
    """
    return _observe(state.physics())


def reset(params: Params, rng: np.random.Generator) -> tuple[State, np.ndarray]:
    """Every state entry uniform in `[-reset_bound, reset_bound)`, rounded to float32.

    With `rng = np.random.default_rng(seed)` this is Gymnasium's `reset(seed=seed)`: one
    `uniform(size=(4,))` draw; the observation's cosines and sines are computed in float32.

    >>> state, obs = reset(Params(), np.random.default_rng(0))
    >>> state.steps, obs.shape, bool(np.all(np.abs(state.physics()) < 0.1))
    (0, (6,), True)
    """
    bound = params.reset_bound
    values = rng.uniform(low=-bound, high=bound, size=(4,)).astype(np.float32)
    noise = rng.bit_generator.state if params.torque_noise_max > 0 else None
    theta1, theta2, dtheta1, dtheta2 = (float(v) for v in values)
    state = State(theta1, theta2, dtheta1, dtheta2, 0, noise)
    return state, _observe(values)


def derivatives(params: Params, augmented: np.ndarray) -> tuple[Any, ...]:
    """`(w1, w2, w1', w2', 0)` of the augmented state `[th1, th2, w1, w2, tau]` (upstream `_dsdt`).

    Hanging straight down at rest without torque, nothing moves (up to the rounding of
    `cos(-pi/2)`, about 6e-17):

    >>> max(abs(float(v)) for v in derivatives(Params(), np.zeros(5))) < 1e-15
    True
    """
    m1, m2 = params.link_mass_1, params.link_mass_2
    l1, lc1, lc2 = params.link_length_1, params.link_com_pos_1, params.link_com_pos_2
    i1 = i2 = params.link_moi
    g = params.gravity
    torque = augmented[-1]
    theta1, theta2, dtheta1, dtheta2 = augmented[:-1]
    d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * np.cos(theta2)) + i1 + i2
    d2 = m2 * (lc2**2 + l1 * lc2 * np.cos(theta2)) + i2
    phi2 = m2 * lc2 * g * np.cos(theta1 + theta2 - np.pi / 2.0)
    phi1 = (
        -m2 * l1 * lc2 * dtheta2**2 * np.sin(theta2)
        - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * np.sin(theta2)
        + (m1 * lc1 + m2 * l1) * g * np.cos(theta1 - np.pi / 2)
        + phi2
    )
    if params.dynamics == "nips":
        ddtheta2 = (torque + d2 / d1 * phi1 - phi2) / (m2 * lc2**2 + i2 - d2**2 / d1)
    else:
        ddtheta2 = (
            torque + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * np.sin(theta2) - phi2
        ) / (m2 * lc2**2 + i2 - d2**2 / d1)
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0


def rk4(params: Params, augmented: np.ndarray) -> np.ndarray:
    """One classical Runge-Kutta step of `dt` from `[th1, th2, w1, w2, tau]`; the new
    `[th1, th2, w1, w2]` (upstream `rk4` over the times `[0, dt]`)."""
    dt = params.dt - 0
    half = dt / 2.0
    k1 = np.asarray(derivatives(params, augmented))
    k2 = np.asarray(derivatives(params, augmented + half * k1))
    k3 = np.asarray(derivatives(params, augmented + half * k2))
    k4 = np.asarray(derivatives(params, augmented + dt * k3))
    return (augmented + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4))[:4]


def wrap(x: float, low: float, high: float) -> float:
    """`x` shifted by multiples of `high - low` into `[low, high]` (upstream `wrap`).

    >>> round(wrap(4.0, -math.pi, math.pi), 12) == round(4.0 - 2 * math.pi, 12)
    True
    """
    span = high - low
    while x > high:
        x = x - span
    while x < low:
        x = x + span
    return x


def step(params: Params, state: State, action: int) -> Step[State]:
    """One step of Acrobot-v1 with `action` 0, 1 or 2 (torque -1, 0, +1).

    Hanging straight down at rest, zero torque keeps it so (to rounding); the reward is -1:

    >>> out = step(Params(), State(0.0, 0.0, 0.0, 0.0), 1)
    >>> bool(np.abs(out.state.physics()).max() < 1e-15), out.reward, out.terminated
    (True, -1.0, False)
    """
    torque = params.torques[action]
    noise = state.noise
    if params.torque_noise_max > 0:
        rng = np.random.default_rng()
        rng.bit_generator.state = state.noise
        torque += rng.uniform(-params.torque_noise_max, params.torque_noise_max)
        noise = rng.bit_generator.state
    new = rk4(params, np.append(state.physics(), torque))
    new[0] = wrap(new[0], -np.pi, np.pi)
    new[1] = wrap(new[1], -np.pi, np.pi)
    new[2] = min(max(new[2], -params.max_vel_1), params.max_vel_1)
    new[3] = min(max(new[3], -params.max_vel_2), params.max_vel_2)
    theta1, theta2, dtheta1, dtheta2 = (float(v) for v in new)
    new_state = State(theta1, theta2, dtheta1, dtheta2, state.steps + 1, noise)
    terminated = bool(-np.cos(new[0]) - np.cos(new[1] + new[0]) > 1.0)
    truncated = params.max_episode_steps is not None and new_state.steps >= params.max_episode_steps
    reward = -1.0 if not terminated else 0.0
    return Step(new_state, _observe(new), reward, terminated, truncated)


def observation_bounds(params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Gymnasium's observation `Box`: `±[1, 1, 1, 1, max_vel_1, max_vel_2]` in float32."""
    high = np.array([1.0, 1.0, 1.0, 1.0, params.max_vel_1, params.max_vel_2], dtype=np.float32)
    return -high, high


def environment(params: Params | None = None) -> Environment[Params, State]:
    """Acrobot-v1 as a spec `Environment` (observations `(6,)` float32, 3 actions)."""
    params = Params() if params is None else params
    low, high = observation_bounds(params)
    return Environment(
        name="Acrobot-v1",
        params=params,
        reset_fn=reset,
        step_fn=step,
        observation_shape=OBSERVATION_SHAPE,
        observation_dtype=np.dtype(np.float32),
        n_actions=N_ACTIONS,
        observation_low=low,
        observation_high=high,
    )
