"""Laws of the classic-control specs: bounds and rewards that hold by construction upstream.

Each factory takes the step function under test, `step(params, state, action) -> Step` (for
example `spec.envs.pendulum.step`), and returns a zero-argument Hypothesis test that steps it
from drawn states and actions (continuous actions also far outside their box):

- `pendulum_laws`: the reward is never positive and at least `-params.max_cost`, and the new
  angular speed stays within `±max_speed`;
- `mountain_car_laws`: the new position stays within `[min_position, max_position]`, the speed
  within `±max_speed`, and the velocity is zero whenever the car stands at the left wall (for
  `MountainCar-v0` and, with `module=mountain_car_continuous`, `MountainCarContinuous-v0`,
  whose state upstream stores in float32, so that its bounds are the float32-rounded ones:
  its car may stand at `float32(-1.2) < -1.2`);
- `acrobot_laws`: the reward is -1 on every step that does not terminate and 0 on the one
  that does, termination is exactly "the free end above the bar", the angles stay within
  `[-pi, pi]` and the velocities within their bounds.

The laws are exact: each compares the spec's own float64 numbers with its own bounds.
"""

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from checked_rl.spec.envs import acrobot, mountain_car, pendulum
from checked_rl.spec.envs.base import Step

__all__ = ["acrobot_laws", "mountain_car_laws", "pendulum_laws"]

StepFn = Callable[[Any, Any, Any], Step[Any]]

ACTIONS_PAST_BOX = 4.0
"""Continuous actions are drawn up to this many times the box's bound: clipping is part of
every law."""


def _torques(bound: float) -> st.SearchStrategy[np.ndarray]:
    reach = ACTIONS_PAST_BOX * bound
    values = st.one_of(st.floats(-reach, reach, width=32), st.sampled_from([-bound, bound]))
    return values.map(lambda v: np.array([v], dtype=np.float32))


def pendulum_laws(
    step: StepFn = pendulum.step, params: pendulum.Params | None = None
) -> Callable[[], None]:
    """Pendulum's reward lies in `[-max_cost, 0]` and its new speed within `±max_speed`.

    Assumes a NumPy step `step(params, state, action)` of the spec's `State` / `Step` types,
    float32 torques `(1,)` drawn up to `ACTIONS_PAST_BOX` times the box, any angle in
    `[-100, 100]` (and odd multiples of pi); the bounds are exact, no tolerance. Accepts any step
    that clips the torque and the speed before they are used, in any order of operations.
    """
    params = pendulum.Params() if params is None else params
    bound = params.max_speed
    speed = st.one_of(st.floats(-bound, bound), st.sampled_from([-bound, bound]))
    # Angles whose normalised square is largest (pi maps to -pi), where the cost peaks.
    angle = st.one_of(st.floats(-100.0, 100.0), st.sampled_from([math.pi, -math.pi, 3 * math.pi]))

    @given(
        state=st.builds(pendulum.State, angle, speed),
        action=_torques(params.max_torque),
    )
    def prop(state: pendulum.State, action: np.ndarray) -> None:
        out = step(params, state, action)
        assert -params.max_cost <= out.reward <= 0.0, (
            f"reward {out.reward} outside [{-params.max_cost}, 0] from {state} under {action}"
        )
        assert abs(out.state.theta_dot) <= params.max_speed, (
            f"speed {out.state.theta_dot} beyond ±{params.max_speed} from {state} under {action}"
        )
        assert not out.terminated, f"Pendulum terminated from {state}"

    return prop


def mountain_car_laws(
    step: StepFn = mountain_car.step, module: ModuleType = mountain_car, params: Any = None
) -> Callable[[], None]:
    """The car stays within its track and speed limit, and stands still at the left wall.

    Assumes a NumPy step of `module`'s `State` / `Step` types, states inside the track and the
    speed limit (the walls included), discrete actions or float32 forces drawn past the box;
    exact bounds, the float32-rounded ones for the continuous car. Accepts any step that clips
    position and speed and zeroes a speed pushing into the left wall; a continuous car that keeps
    float64 positions is accepted too (its float64 bounds lie inside the float32 ones).
    """
    params = module.Params() if params is None else params
    lo, hi = params.min_position, params.max_position
    # The continuous car stores its state in float32: its bounds are the float32 ones.
    stored = np.float32 if module is not mountain_car else np.float64
    wall, low, high = (float(stored(v)) for v in (lo, lo, hi))
    speed_limit = float(stored(params.max_speed))
    edges = st.sampled_from([lo, lo + 1e-9, lo + 0.01, hi, hi - 1e-9])
    position = st.one_of(st.floats(lo, hi), edges)
    speed = st.one_of(
        st.floats(-params.max_speed, params.max_speed),
        st.sampled_from([-params.max_speed, params.max_speed]),
    )
    actions = _torques(params.max_action) if module is not mountain_car else st.integers(0, 2)

    @given(state=st.builds(module.State, position, speed), action=actions)
    def prop(state: Any, action: Any) -> None:
        out = step(params, state, action)
        new = out.state
        where = f"from {state} under {action!r}"
        assert low <= new.position <= high, (
            f"position {new.position} outside [{low}, {high}] {where}"
        )
        assert abs(new.velocity) <= speed_limit, f"speed {new.velocity} {where}"
        if new.position == wall:
            assert new.velocity == 0.0, f"velocity {new.velocity} at the left wall {where}"

    return prop


def acrobot_laws(
    step: StepFn = acrobot.step, params: acrobot.Params | None = None
) -> Callable[[], None]:
    """Reward -1 until the step that terminates (0), termination exactly when the free end is
    above the bar, angles within `[-pi, pi]`, velocities within their bounds.

    Assumes a NumPy step of the spec's `State` / `Step` types, states with angles in `[-pi, pi]`
    and velocities within their bounds, actions 0..2; termination is recomputed from the step's
    own new state, exactly. Accepts any integrator and order of operations that wraps the angles
    and clips the velocities it returns.
    """
    params = acrobot.Params() if params is None else params
    angle = st.floats(-math.pi, math.pi)

    @given(
        state=st.builds(
            acrobot.State,
            angle,
            angle,
            st.floats(-params.max_vel_1, params.max_vel_1),
            st.floats(-params.max_vel_2, params.max_vel_2),
        ),
        action=st.integers(0, 2),
    )
    def prop(state: acrobot.State, action: int) -> None:
        out = step(params, state, action)
        new = out.state
        where = f"from {state} under {action}"
        height = -np.cos(new.theta1) - np.cos(new.theta2 + new.theta1)
        assert out.terminated == bool(height > 1.0), f"terminated {out.terminated} {where}"
        assert out.reward == (0.0 if out.terminated else -1.0), f"reward {out.reward} {where}"
        for name in ("theta1", "theta2"):
            assert -math.pi <= getattr(new, name) <= math.pi, f"{name} {getattr(new, name)}"
        assert abs(new.dtheta1) <= params.max_vel_1 and abs(new.dtheta2) <= params.max_vel_2

    return prop
