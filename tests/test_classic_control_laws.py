"""The classic-control spec laws hold for the spec; buggy steps fail them."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import settings

from checked_rl.properties.classic_control_laws import (
    acrobot_laws,
    mountain_car_laws,
    pendulum_laws,
)
from checked_rl.spec.envs import acrobot, mountain_car, pendulum
from checked_rl.spec.envs import mountain_car_continuous as mcc
from checked_rl.spec.envs.base import Step

MANY = settings(max_examples=300, deadline=None)


def test_spec_laws_hold() -> None:
    pendulum_laws()()
    mountain_car_laws()()
    mountain_car_laws(mcc.step, mcc)()
    acrobot_laws()()
    acrobot_laws(params=acrobot.Params(dynamics="nips"))()


def speed_clipped_first(params, state, action):
    """Clips the old speed instead of the new one."""
    clipped = dataclasses.replace(
        state, theta_dot=float(np.clip(state.theta_dot, -params.max_speed, params.max_speed))
    )
    unbounded = dataclasses.replace(params, max_speed=math.inf)
    out = pendulum.step(unbounded, clipped, action)
    reward = pendulum.step(params, state, action).reward
    return out._replace(reward=reward)


def torque_unclipped(params, state, action):
    """Charges the torque unclipped."""
    return pendulum.step(dataclasses.replace(params, max_torque=1e9), state, action)


def no_wall_stop(params, state, action):
    """Drops upstream's stop at the left wall (the car bounces off it with its speed)."""
    out = mountain_car.step(params, state, action)
    if out.state.position == params.min_position:
        velocity = float(
            np.clip(
                state.velocity + (action - 1) * params.force
                - math.cos(3 * state.position) * params.gravity,
                -params.max_speed, params.max_speed,
            )
        )  # fmt: skip
        return out._replace(state=dataclasses.replace(out.state, velocity=velocity))
    return out


def no_position_clip(params, state, action):
    """Moves the continuous car without clipping its position."""
    out = mcc.step(params, state, action)
    position = state.position + out.state.velocity
    return out._replace(state=dataclasses.replace(out.state, position=position))


def reward_minus_one_always(params, state, action) -> Step:
    """Charges -1 on the terminating step too."""
    return acrobot.step(params, state, action)._replace(reward=-1.0)


def unwrapped_angles(params, state, action):
    """Forgets to wrap the first angle."""
    out = acrobot.step(params, state, action)
    raw = acrobot.rk4(params, np.append(state.physics(), params.torques[action]))
    return out._replace(state=dataclasses.replace(out.state, theta1=float(raw[0])))


@pytest.mark.parametrize(
    "law",
    [
        lambda: pendulum_laws(speed_clipped_first),
        lambda: pendulum_laws(torque_unclipped),
        lambda: mountain_car_laws(no_wall_stop),
        lambda: mountain_car_laws(no_position_clip, mcc),
        lambda: acrobot_laws(reward_minus_one_always),
        lambda: acrobot_laws(unwrapped_angles),
    ],
)
def test_buggy_steps_fail_the_laws(law) -> None:
    with pytest.raises((AssertionError, ExceptionGroup)):
        MANY(law())()
