"""Properties: batched classic-control twins agree with their spec, step by step.

`step_matches_spec(env_id, make_env, dtype=...)` returns a zero-argument Hypothesis test: it
draws spec states (anywhere the dynamics reach, and next to every discontinuity: the
termination tests, MountainCar's left wall, the time limit) and actions (continuous ones also
outside their box), writes the states into the environment built by
`make_env(num_envs, params, dtype)`, steps it once and compares with the spec's `step`. The
environment must implement `runtime.envs.base.BatchedEnv` plus `get_state() -> (physics [N, P],
steps [N])` and `set_state(physics, steps)`, physics ordered as the spec's `State.physics()`
(for example `runtime.envs.acrobot.Acrobot`). `env_id` is a key of `KITS`.

Observations are compared in float64 before the spec's float32 rounding (Acrobot's and
Pendulum's cosines and sines, whose angles may be wrapped differently) to the named tolerances
`STEP_TOL` (float64: last bits of `sin`/`cos` through RK4; float32: from the float32-rounded
state), `CONTINUOUS_CAR_TOL` (MountainCarContinuous stores its state in float32, and upstream
computes a float32 action's force in float32: one float32 unit of the state apart). Rewards are
compared within the same tolerance, flags exactly except where the spec's new state lies within
the tolerance of a discontinuity (`near_edge`), where rounding may legitimately go either way.
"""

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from checked_rl.runtime.envs.base import EnvStep
from checked_rl.spec.envs import acrobot, mountain_car, pendulum
from checked_rl.spec.envs import mountain_car_continuous as mcc

__all__ = [
    "ACROBOT_FLOAT32_TOL",
    "CONTINUOUS_CAR_TOL",
    "KITS",
    "MAX_BATCH",
    "PENDULUM_TORQUE_COST_SLACK",
    "STEP_TOL",
    "Kit",
    "check_auto_reset",
    "check_physics",
    "check_step",
    "observe64",
    "set_states",
    "step_matches_spec",
]

STEP_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
"""One step of Acrobot, MountainCar or Pendulum, relative and absolute, by dtype: float64 leaves
room for a few last-bit differences of `sin`/`cos` carried through RK4's four stages (values
below 30); float32 is measured from the float32-rounded state."""

CONTINUOUS_CAR_TOL = 2.0**-22
"""MountainCarContinuous in either dtype: its state is rounded to float32 after every step, so a
last-bit difference before the rounding may move the result by one float32 unit (`2^-23`
relative to values below 1), twice with the velocity added to the position."""

ACROBOT_FLOAT32_TOL = 1e-2
"""One step of a float32 Acrobot (relative to `1 + |value|`, and absolute), from the
float32-rounded state. RK4 over one 0.2 s step carries float32 rounding with a gain that grows
like `exp(0.2 * |angular velocity|)`: from about 4e-7 with velocities a tenth of their bounds to
a measured 1.1e-3 (17,000 random states with both velocities within 80% of their bounds; 99th
percentile 3.2e-5) at the bounds (`4 pi`, `9 pi`). Upstream computes in float64, so a float32
twin cannot do better there; the float64 twin is held to `STEP_TOL`."""

PENDULUM_TORQUE_COST_SLACK = 2.0**-31
"""Added to Pendulum's reward tolerance in either dtype: upstream computes the torque cost
`0.001 u^2` in the action's dtype, and torch's float32 product of a one-element tensor rounds
differently from NumPy's now and then (measured: 1 of 3,000 torques, e.g. `u = 1.817929` gives
0.0033048659 against 0.0033048661), one float32 unit of a cost below `0.004` (`2^-31`)."""

MAX_BATCH = 6


@dataclass(frozen=True)
class Kit:
    """What the properties need to know about one environment."""

    spec: ModuleType
    states: Callable[[Any], st.SearchStrategy[Any]]  # states(params)
    actions: st.SearchStrategy[Any]  # one action, as `spec.step` takes it
    continuous: bool
    reset_box: Callable[[Any], tuple[list[float], list[float]]]  # per physical quantity
    reward_slack: float = 0.0  # added to the reward tolerance (`PENDULUM_TORQUE_COST_SLACK`)


def _limit_steps(params: Any) -> st.SearchStrategy[int]:
    limit = params.max_episode_steps or 1000
    return st.one_of(st.integers(0, limit - 1), st.sampled_from([limit - 2, limit - 1]))


def _floats(low: float, high: float, *edges: float) -> st.SearchStrategy[float]:
    near = [e + d for e in edges for d in (0.0, 1e-7, -1e-7, 1e-3, -1e-3)]
    return st.one_of(st.floats(low, high), st.sampled_from(near or [low]))


def _acrobot_states(params: acrobot.Params) -> st.SearchStrategy[acrobot.State]:
    angle = _floats(-math.pi, math.pi, math.pi, -math.pi, 0.0)
    return st.builds(
        acrobot.State,
        angle,
        angle,
        st.floats(-params.max_vel_1, params.max_vel_1),
        st.floats(-params.max_vel_2, params.max_vel_2),
        _limit_steps(params),
    )


def _car_states(params: Any, module: ModuleType) -> st.SearchStrategy[Any]:
    position = _floats(
        params.min_position, params.max_position, params.min_position, params.goal_position
    )
    velocity = _floats(-params.max_speed, params.max_speed, 0.0, -params.max_speed)
    if module is mcc:
        return st.builds(
            lambda p, v, s, single: mcc.State.from_physics(np.array([p, v]), s, single),
            position, velocity, _limit_steps(params), st.booleans(),
        )  # fmt: skip
    return st.builds(module.State, position, velocity, _limit_steps(params))


def _pendulum_states(params: pendulum.Params) -> st.SearchStrategy[pendulum.State]:
    speed = _floats(-params.max_speed, params.max_speed, params.max_speed, -params.max_speed)
    return st.builds(pendulum.State, st.floats(-10.0, 10.0), speed, _limit_steps(params))


def _box_actions(low: float, high: float) -> st.SearchStrategy[np.ndarray]:
    """float32 actions `(1,)`: inside the box, at its bounds, and up to twice past it."""
    values = st.one_of(st.floats(2 * low, 2 * high, width=32), st.sampled_from([low, high]))
    return values.map(lambda v: np.array([v], dtype=np.float32))


def _car_box(params: Any) -> tuple[list[float], list[float]]:
    return [params.reset_low, 0.0], [params.reset_high, 0.0]


KITS: dict[str, Kit] = {
    "Acrobot-v1": Kit(
        acrobot, _acrobot_states, st.integers(0, 2), False,
        lambda p: ([-p.reset_bound] * 4, [p.reset_bound] * 4),
    ),
    "MountainCar-v0": Kit(
        mountain_car, lambda p: _car_states(p, mountain_car), st.integers(0, 2), False, _car_box
    ),
    "MountainCarContinuous-v0": Kit(
        mcc, lambda p: _car_states(p, mcc), _box_actions(-1.0, 1.0), True, _car_box
    ),
    "Pendulum-v1": Kit(
        pendulum, _pendulum_states, _box_actions(-2.0, 2.0), True,
        lambda p: ([-p.reset_angle, -p.reset_speed], [p.reset_angle, p.reset_speed]),
        reward_slack=PENDULUM_TORQUE_COST_SLACK,
    ),
}  # fmt: skip
"""The environments these properties know, by Gymnasium id."""


def observe64(module: ModuleType, state: Any) -> np.ndarray:
    """The observation of a spec `state` in float64 (before the spec's float32 rounding)."""
    physics = state.physics()
    if module is acrobot:
        t1, t2, w1, w2 = physics
        return np.array([np.cos(t1), np.sin(t1), np.cos(t2), np.sin(t2), w1, w2])
    if module is pendulum:
        theta, theta_dot = physics
        return np.array([np.cos(theta), np.sin(theta), theta_dot])
    return physics


def near_edge(module: ModuleType, params: Any, state: Any, tol: float) -> bool:
    """Whether the spec's new `state` lies within `tol` of a discontinuity of the step: the
    termination tests (where a flag and a reward may flip) or MountainCar's left wall."""
    if module is acrobot:
        height = -np.cos(state.theta1) - np.cos(state.theta2 + state.theta1)
        return abs(height - 1.0) <= 4 * tol
    if module in (mountain_car, mcc):
        scale = tol * (1 + abs(params.min_position))
        return bool(
            abs(state.position - params.goal_position) <= scale
            or abs(state.velocity - params.goal_velocity) <= tol
            or abs(state.position - params.min_position) <= scale
        )
    return False


def tolerance(module: ModuleType, dtype: torch.dtype) -> float:
    """The tolerance of one step of `module`'s twin in `dtype`."""
    if module is mcc:
        return CONTINUOUS_CAR_TOL
    if module is acrobot and dtype == torch.float32:
        return ACROBOT_FLOAT32_TOL
    return STEP_TOL[dtype]


def set_states(env: Any, states: list[Any], dtype: torch.dtype) -> None:
    """Write the spec `states` into the copies of `env`, physics in `dtype`."""
    physics = torch.tensor(np.stack([s.physics() for s in states]), dtype=dtype)
    env.set_state(physics, torch.tensor([s.steps for s in states], dtype=torch.int64))


def action_tensor(kit: Kit, actions: list[Any]) -> Tensor:
    """The batch of spec `actions` as the twin takes it: `[N]` int64 or `[N, 1]` float32."""
    if kit.continuous:
        return torch.from_numpy(np.stack(actions))
    return torch.tensor(actions, dtype=torch.int64)


def check_step(
    kit: Kit, params: Any, states: list[Any], actions: list[Any], out: EnvStep, tol: float
) -> list[Any]:
    """Assert that one batched step `out` from `states` under `actions` matches the spec;
    return the spec steps."""
    expected = [kit.spec.step(params, s, a) for s, a in zip(states, actions, strict=True)]
    got = out.next_observation.double().cpu().numpy()
    for i, want in enumerate(expected):
        where = f"env {i} from {states[i]} under action {actions[i]!r}"
        np.testing.assert_allclose(
            got[i], observe64(kit.spec, want.state), rtol=tol, atol=tol,
            err_msg=f"next_observation[{where}]",
        )  # fmt: skip
        assert bool(out.truncated[i]) == want.truncated, f"truncated[{where}]"
        if near_edge(kit.spec, params, want.state, tol):
            continue
        assert bool(out.terminated[i]) == want.terminated, f"terminated[{where}]"
        reward = float(out.reward[i])
        assert abs(reward - want.reward) <= tol * (1 + abs(want.reward)) + kit.reward_slack, (
            f"reward[{where}]: expected {want.reward}, got {reward}"
        )
    return expected


def check_physics(
    kit: Kit, params: Any, env: Any, out: EnvStep, expected: list[Any], tol: float
) -> None:
    """The copies that go on hold the spec's new physics (`get_state`), Acrobot's angles
    compared as numbers except within `tol` of the wrap at `±pi`, where either side is right,
    and Pendulum's angle modulo `2 pi` (it is seen only through `cos`, `sin` and
    `angle_normalize`, so a twin that keeps it wrapped is as right as one that does not);
    copies next to a discontinuity (`near_edge`) are left out."""
    physics, _ = env.get_state()
    done = (out.terminated | out.truncated).tolist()
    for i, want in enumerate(expected):
        if done[i] or want.terminated or near_edge(kit.spec, params, want.state, tol):
            continue
        got, wanted = physics[i].double().cpu().numpy(), want.state.physics()
        close = np.abs(got - wanted) <= tol * (1 + np.abs(wanted))
        if kit.spec is acrobot:  # the two angles
            close[:2] |= np.abs(np.abs(wanted[:2]) - math.pi) <= 4 * tol * math.pi
        if kit.spec is pendulum:  # the angle, modulo whole turns
            off = got[0] - wanted[0]
            off -= 2 * math.pi * round(off / (2 * math.pi))
            close[0] = abs(off) <= tol * (1 + abs(wanted[0]))
        assert np.all(close), f"env {i}: physics {got.tolist()}, the spec's {wanted.tolist()}"


def check_auto_reset(kit: Kit, params: Any, env: Any, out: EnvStep) -> None:
    """After a step: done copies hold a fresh state inside the spec's reset box with step count
    0; the others hold the successor they returned."""
    physics, steps = env.get_state()
    observed = env.observe()
    done = (out.terminated | out.truncated).cpu()
    low, high = kit.reset_box(params)
    for i in range(env.num_envs):
        if done[i]:
            assert int(steps[i]) == 0, f"env {i} is done but its step count is {int(steps[i])}"
            row = physics[i].double().cpu().numpy()
            assert np.all((np.float32(low) <= row) & (row <= np.float32(high))), (
                f"env {i} was reset to {row.tolist()}, outside [{low}, {high}]"
            )
        else:
            assert torch.equal(observed[i], out.next_observation[i]), (
                f"env {i} is not done but observe() differs from next_observation"
            )


def step_matches_spec(
    env_id: str,
    make_env: Callable[[int, Any, torch.dtype], Any],
    *,
    dtype: torch.dtype = torch.float64,
    params: Any = None,
) -> Callable[[], None]:
    """One batched step of `env_id`'s twin from drawn states and actions agrees with the spec,
    and done copies are reset in the same step.

    Assumes `make_env(num_envs, params, dtype)` builds a twin with `get_state` / `set_state`
    (physics ordered as the spec's `State.physics()`) that takes CPU actions (`[N]` int64, or
    `[N, 1]` float32 for the continuous ones, drawn up to twice outside the box, which it must
    clip as the spec does), steps copies independently and autoresets on the same step into the
    spec's reset box; compares to `STEP_TOL[dtype]` (`CONTINUOUS_CAR_TOL` for
    MountainCarContinuous) from the state as the twin holds it in `dtype`, with flags and rewards
    left free `near_edge`, Acrobot's angles free at the wrap and Pendulum's compared modulo
    `2 pi`. Accepts any order of operations, any wrapping of the angles (Pendulum's kept in
    `[-pi, pi)` or not), and any reset generator (reset states are only bounded).
    """
    kit = KITS[env_id]
    params = kit.spec.Params() if params is None else params
    tol = tolerance(kit.spec, dtype)

    @given(states=st.lists(kit.states(params), min_size=1, max_size=MAX_BATCH), data=st.data())
    def prop(states: list[Any], data: st.DataObject) -> None:
        n = len(states)
        actions = data.draw(st.lists(kit.actions, min_size=n, max_size=n), label="actions")
        env = make_env(n, params, dtype)
        set_states(env, states, dtype)
        physics, _ = env.get_state()  # what a copy of `dtype` really holds
        states = [
            s if dtype == torch.float64 else _with_physics(s, physics[i].double().numpy())
            for i, s in enumerate(states)
        ]
        observed = env.observe().double().cpu().numpy()
        for i, state in enumerate(states):
            np.testing.assert_allclose(
                observed[i], observe64(kit.spec, state), rtol=tol, atol=tol,
                err_msg=f"observe()[env {i}] after set_state({state})",
            )  # fmt: skip
        out = env.step(action_tensor(kit, actions))
        expected = check_step(kit, params, states, actions, out, tol)
        check_physics(kit, params, env, out, expected, tol)
        check_auto_reset(kit, params, env, out)

    return prop


def _with_physics(state: Any, physics: np.ndarray) -> Any:
    """`state` with its physics replaced (its other fields kept)."""
    names = [f.name for f in dataclasses.fields(state)]
    names = [name for name in names if name not in ("steps", "single", "noise")]
    return type(state)(**{**vars(state), **dict(zip(names, map(float, physics), strict=True))})
