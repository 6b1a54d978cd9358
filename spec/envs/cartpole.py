"""CartPole: Gymnasium's `CartPole-v1`, bit for bit, as pure functions.

A pole is hinged on a cart that moves along a frictionless track; each step pushes the cart
left (action 0) or right (action 1) with a fixed force. The physics is the Barto, Sutton and
Anderson (1983) cart-pole with Florian's (2007) equations of motion:

    temp      = (F + m_p l theta_dot^2 sin(theta)) / (m_c + m_p)
    theta_acc = (g sin(theta) - cos(theta) temp) / (l (4/3 - m_p cos(theta)^2 / (m_c + m_p)))
    x_acc     = temp - m_p l theta_acc cos(theta) / (m_c + m_p)

integrated over `tau` seconds with explicit Euler (the default) or semi-implicit Euler. The
episode terminates when |x| > 2.4 or |theta| > 12 degrees and is truncated after 500 steps (the
`TimeLimit` wrapper that `gymnasium.make("CartPole-v1")` adds).

Source: gymnasium/envs/classic_control/cartpole.py (`CartPoleEnv`), whose operations and their
order are kept here so that observations agree bit for bit: the state is float64, the
observation is the state rounded to float32.
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from checked_rl.spec.envs.base import Environment, Step

Integrator = Literal["euler", "semi-implicit euler"]

INTEGRATORS: tuple[Integrator, ...] = ("euler", "semi-implicit euler")
OBSERVATION_SHAPE = (4,)
N_ACTIONS = 2


@dataclass(frozen=True)
class Params:
    """The constants of CartPole-v1; every default is the upstream value.

    Source: gymnasium/envs/classic_control/cartpole.py, `CartPoleEnv.__init__`.
    """

    gravity: float = 9.8  # upstream `gravity`, m/s^2
    mass_cart: float = 1.0  # upstream `masscart`, kg
    mass_pole: float = 0.1  # upstream `masspole`, kg
    half_length: float = 0.5  # upstream `length`, "actually half the pole's length", m
    force_mag: float = 10.0  # upstream `force_mag`, N
    tau: float = 0.02  # upstream `tau`, seconds between state updates
    integrator: Integrator = "euler"  # upstream `kinematics_integrator`
    x_threshold: float = 2.4  # upstream `x_threshold`, m
    theta_threshold: float = 12 * 2 * math.pi / 360  # upstream `theta_threshold_radians`
    max_episode_steps: int | None = 500  # `gym.make("CartPole-v1")`'s TimeLimit; None: no limit
    sutton_barto_reward: bool = False  # upstream `sutton_barto_reward` (0 per step, -1 at the end)
    reset_bound: float = 0.05  # upstream reset draws every state entry uniform in [-0.05, 0.05)

    def __post_init__(self) -> None:
        if self.integrator not in INTEGRATORS:
            raise ValueError(
                f"CartPole Params.integrator must be one of {INTEGRATORS}, got {self.integrator!r}"
            )
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(
                "CartPole Params.max_episode_steps must be None or at least 1, "
                f"got {self.max_episode_steps}"
            )

    @property
    def total_mass(self) -> float:
        """Cart plus pole, computed as upstream (`masspole + masscart`)."""
        return self.mass_pole + self.mass_cart

    @property
    def polemass_length(self) -> float:
        """Pole mass times half length, computed as upstream (`masspole * length`)."""
        return self.mass_pole * self.half_length


@dataclass(frozen=True)
class State:
    """The float64 physical state and the number of steps taken in this episode."""

    x: float  # cart position, m
    x_dot: float  # cart velocity, m/s
    theta: float  # pole angle from upright, rad
    theta_dot: float  # pole angular velocity, rad/s
    steps: int = 0  # steps since the last reset, for truncation

    def physics(self) -> np.ndarray:
        """The physical state as a float64 array `[x, x_dot, theta, theta_dot]`."""
        return np.array((self.x, self.x_dot, self.theta, self.theta_dot), dtype=np.float64)

    @classmethod
    def from_physics(cls, physics: np.ndarray, steps: int = 0) -> "State":
        """The state with physics `[x, x_dot, theta, theta_dot]` and step count `steps`."""
        if np.shape(physics) != OBSERVATION_SHAPE:
            raise ValueError(
                f"CartPole State.from_physics: expected 4 entries [x, x_dot, theta, theta_dot], "
                f"got shape {np.shape(physics)}"
            )
        x, x_dot, theta, theta_dot = (float(v) for v in physics)
        return cls(x, x_dot, theta, theta_dot, int(steps))


def observation(state: State) -> np.ndarray:
    """The observation of `state`: its physics rounded to float32.

    >>> observation(State(0.1, 0.0, -0.2, 1e-9)).tolist() == [np.float32(0.1), 0.0,
    ...     np.float32(-0.2), np.float32(1e-9)]
    True
    """
    return np.array((state.x, state.x_dot, state.theta, state.theta_dot), dtype=np.float32)


def reset(params: Params, rng: np.random.Generator) -> tuple[State, np.ndarray]:
    """Draw x, x_dot, theta, theta_dot uniformly in `[-reset_bound, reset_bound)`.

    With `rng = np.random.default_rng(seed)` this is Gymnasium's `reset(seed=seed)`: the same
    single `uniform(size=(4,))` draw.

    >>> state, obs = reset(Params(), np.random.default_rng(0))
    >>> state.steps, obs.dtype, bool(np.all(np.abs(obs) < 0.05))
    (0, dtype('float32'), True)
    """
    bound = params.reset_bound
    physics = rng.uniform(low=-bound, high=bound, size=OBSERVATION_SHAPE)
    state = State.from_physics(physics)
    return state, observation(state)


def accelerations(params: Params, state: State, action: int) -> tuple[float, float]:
    """The cart and pole accelerations `(x_acc, theta_acc)` under `action` (0 left, 1 right).

    Florian (2007), eqs. 23-24 with friction dropped, written as upstream `CartPoleEnv.step`.
    From rest, pushing right gives temp = 10/1.1, theta_acc = -(100/11) / (0.5 * 41/33) = -600/41
    and x_acc = 100/11 + 0.05 * (600/41) / 1.1 = 4400/451:

    >>> x_acc, theta_acc = accelerations(Params(), State(0.0, 0.0, 0.0, 0.0), 1)
    >>> round(x_acc, 6), round(theta_acc, 6), round(4400 / 451, 6), round(-600 / 41, 6)
    (9.756098, -14.634146, 9.756098, -14.634146)
    """
    force = params.force_mag if action == 1 else -params.force_mag
    costheta = np.cos(np.float64(state.theta))
    sintheta = np.sin(np.float64(state.theta))
    temp = (
        force + params.polemass_length * np.square(state.theta_dot) * sintheta
    ) / params.total_mass
    theta_acc = (params.gravity * sintheta - costheta * temp) / (
        params.half_length
        * (4.0 / 3.0 - params.mass_pole * np.square(costheta) / params.total_mass)
    )
    x_acc = temp - params.polemass_length * theta_acc * costheta / params.total_mass
    return float(x_acc), float(theta_acc)


def integrate(params: Params, state: State, x_acc: float, theta_acc: float) -> State:
    """Advance the physics by `tau` with the configured integrator; count one step.

    Explicit Euler updates positions with the old velocities; semi-implicit Euler with the new.

    >>> s = integrate(Params(), State(0.0, 1.0, 0.0, 0.0), 2.0, 0.0)
    >>> round(s.x, 6), round(s.x_dot, 6), s.steps
    (0.02, 1.04, 1)
    >>> s = integrate(Params(integrator="semi-implicit euler"), State(0.0, 1.0, 0.0, 0.0), 2.0, 0.0)
    >>> round(s.x, 6), round(s.x_dot, 6)
    (0.0208, 1.04)
    """
    x, x_dot, theta, theta_dot = state.x, state.x_dot, state.theta, state.theta_dot
    tau = params.tau
    if params.integrator == "euler":
        x = x + tau * x_dot
        x_dot = x_dot + tau * x_acc
        theta = theta + tau * theta_dot
        theta_dot = theta_dot + tau * theta_acc
    else:
        x_dot = x_dot + tau * x_acc
        x = x + tau * x_dot
        theta_dot = theta_dot + tau * theta_acc
        theta = theta + tau * theta_dot
    return State(x, x_dot, theta, theta_dot, state.steps + 1)


def is_terminated(params: Params, state: State) -> bool:
    """True when the cart left `[-x_threshold, x_threshold]` or the pole `±theta_threshold`.

    The bounds themselves are still alive (strict inequalities, as upstream):

    >>> is_terminated(Params(), State(2.4, 0.0, 0.0, 0.0)), is_terminated(Params(), State(
    ...     2.4000001, 0.0, 0.0, 0.0))
    (False, True)
    """
    return bool(
        state.x < -params.x_threshold
        or state.x > params.x_threshold
        or state.theta < -params.theta_threshold
        or state.theta > params.theta_threshold
    )


def is_truncated(params: Params, state: State) -> bool:
    """True once `state.steps` reaches `max_episode_steps` (Gymnasium's `TimeLimit`)."""
    return params.max_episode_steps is not None and state.steps >= params.max_episode_steps


def reward(params: Params, terminated: bool) -> float:
    """1 on every step, the terminating one included; Sutton-Barto: 0, and -1 when terminating.

    >>> reward(Params(), True), reward(Params(sutton_barto_reward=True), False)
    (1.0, 0.0)
    """
    if params.sutton_barto_reward:
        return -1.0 if terminated else 0.0
    return 1.0


def step(params: Params, state: State, action: int) -> Step[State]:
    """One step of CartPole-v1 with `action` 0 (push left) or 1 (push right).

    Stepping an episode that has already ended is the caller's error and is not modelled (upstream
    warns and changes the reward); the checked sessions reset instead.

    >>> out = step(Params(), State(0.0, 0.0, 0.0, 0.0), 1)
    >>> [round(float(v), 6) for v in out.observation], out.reward, out.terminated, out.truncated
    ([0.0, 0.195122, 0.0, -0.292683], 1.0, False, False)
    """
    x_acc, theta_acc = accelerations(params, state, action)
    new_state = integrate(params, state, x_acc, theta_acc)
    terminated = is_terminated(params, new_state)
    return Step(
        state=new_state,
        observation=observation(new_state),
        reward=reward(params, terminated),
        terminated=terminated,
        truncated=is_truncated(params, new_state),
    )


def observation_bounds(params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Gymnasium's observation `Box`: ±[2 x_threshold, inf, 2 theta_threshold, inf] in float32."""
    high = np.array(
        [params.x_threshold * 2, np.inf, params.theta_threshold * 2, np.inf], dtype=np.float32
    )
    return -high, high


def environment(params: Params | None = None) -> Environment[Params, State]:
    """CartPole-v1 as a spec `Environment` (observations `(4,)` float32, 2 actions)."""
    params = Params() if params is None else params
    low, high = observation_bounds(params)
    return Environment(
        name="CartPole-v1",
        params=params,
        reset_fn=reset,
        step_fn=step,
        observation_shape=OBSERVATION_SHAPE,
        observation_dtype=np.dtype(np.float32),
        n_actions=N_ACTIONS,
        observation_low=low,
        observation_high=high,
    )
