"""Properties: a batched CartPole agrees with `spec.envs.cartpole`, step by step and over episodes.

Each property is a factory: pass it a callable `make_env(num_envs, params, dtype)` building the
batched environment under test (for example `runtime.envs.cartpole.CartPole`) and it returns a
zero-argument Hypothesis test. The environment must implement `runtime.envs.base.BatchedEnv`
and also `get_state() -> (physics [N, 4], steps [N])` and `set_state(physics, steps)`.

Float64 copies must agree with the spec to `FLOAT64_STEP_TOL` after one step (room for the
last bits of `sin` and `cos` and for a different order of a few operations); float32 copies
are compared with the spec stepped from the same float32-rounded state, to `FLOAT32_STEP_TOL`
(both in `properties.tolerances`).
Termination flags are compared exactly except where the spec's new x or theta lies within the
tolerance of a threshold, where rounding may legitimately decide either way.
"""

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from checked_rl.properties.strategies.envs import (
    action_sequences,
    cartpole_batches,
    cartpole_physics,
)
from checked_rl.properties.tolerances import (
    CARTPOLE_STEP_TOL,
    FLOAT32_STEP_TOL,
    FLOAT64_STEP_TOL,
    FLOAT64_TRAJECTORY_TOL,
    round_to_dtype,
)
from checked_rl.runtime.envs.base import EnvStep
from checked_rl.spec.envs import cartpole as spec

__all__ = [
    "FLOAT32_STEP_TOL",
    "FLOAT64_STEP_TOL",
    "FLOAT64_TRAJECTORY_TOL",
    "TOLERANCES",
    "MakeCartPole",
    "StatefulCartPole",
    "check_auto_reset",
    "check_step",
    "set_states",
    "step_matches_spec",
    "trajectory_matches_spec",
]

TOLERANCES = CARTPOLE_STEP_TOL
"""`properties.tolerances.CARTPOLE_STEP_TOL` under the name this module has always exported."""


class StatefulCartPole(Protocol):
    """A batched CartPole whose state can be read and written (what these properties need)."""

    num_envs: int

    def step(self, actions: Tensor) -> EnvStep: ...
    def observe(self) -> Tensor: ...
    def get_state(self) -> tuple[Tensor, Tensor]: ...
    def set_state(self, physics: Tensor, steps: Tensor) -> None: ...


MakeCartPole = Callable[[int, spec.Params, torch.dtype], StatefulCartPole]

_PARAMS = st.builds(
    spec.Params,
    integrator=st.sampled_from(spec.INTEGRATORS),
    sutton_barto_reward=st.booleans(),
)


def _rounded(state: spec.State, dtype: torch.dtype) -> spec.State:
    """`state` with its physics rounded to `dtype` (what a copy of that dtype really holds)."""
    if dtype == torch.float64:
        return state
    return spec.State.from_physics(round_to_dtype(state.physics(), dtype), state.steps)


def _near_threshold(params: spec.Params, state: spec.State, tol: float) -> bool:
    """True when x or theta of `state` is within `tol` (relative) of its threshold."""
    return bool(
        abs(abs(state.x) - params.x_threshold) <= tol * params.x_threshold
        or abs(abs(state.theta) - params.theta_threshold) <= tol * params.theta_threshold
    )


def check_step(
    params: spec.Params,
    states: list[spec.State],
    actions: list[int],
    out: EnvStep,
    tol: float,
) -> list[spec.Step[spec.State]]:
    """Assert that one batched step `out` from `states` under `actions` matches the spec.

    Returns the spec steps, for callers that continue the episode.
    """
    expected = [spec.step(params, s, a) for s, a in zip(states, actions, strict=True)]
    got_physics = out.next_observation.double().cpu().numpy()
    for i, want in enumerate(expected):
        np.testing.assert_allclose(
            got_physics[i],
            want.state.physics(),
            rtol=tol,
            atol=tol,
            err_msg=f"next_observation[env {i}] from {states[i]} under action {actions[i]}",
        )
        assert bool(out.truncated[i]) == want.truncated, (
            f"truncated[env {i}]: expected {want.truncated} at step {want.state.steps}, "
            f"got {bool(out.truncated[i])}"
        )
        if _near_threshold(params, want.state, tol):
            continue
        assert bool(out.terminated[i]) == want.terminated, (
            f"terminated[env {i}]: expected {want.terminated} for {want.state}, "
            f"got {bool(out.terminated[i])}"
        )
        assert float(out.reward[i]) == want.reward, (
            f"reward[env {i}]: expected {want.reward}, got {float(out.reward[i])}"
        )
    return expected


def check_auto_reset(
    params: spec.Params, env: StatefulCartPole, out: EnvStep, dtype: torch.dtype
) -> None:
    """After a step: done copies hold a fresh reset state, the others the returned successor."""
    physics, steps = env.get_state()
    observed = env.observe()
    done = (out.terminated | out.truncated).cpu()
    for i in range(env.num_envs):
        if done[i]:
            assert int(steps[i]) == 0, f"env {i} is done but its step count is {int(steps[i])}"
            assert bool(torch.all(physics[i].abs() <= params.reset_bound)), (
                f"env {i} was reset to {physics[i].tolist()}, outside ±{params.reset_bound}"
            )
        else:
            assert torch.equal(observed[i], out.next_observation[i]), (
                f"env {i} is not done but observe() = {observed[i].tolist()} differs from "
                f"next_observation = {out.next_observation[i].tolist()}"
            )
        assert torch.equal(observed[i].to(dtype), physics[i].to(dtype)), (
            f"env {i}: observe() = {observed[i].tolist()} is not its state {physics[i].tolist()}"
        )


def set_states(env: StatefulCartPole, states: list[spec.State], dtype: torch.dtype) -> None:
    """Write the spec `states` into the copies of `env`, physics in `dtype`."""
    physics = torch.tensor(np.stack([s.physics() for s in states]), dtype=dtype)
    steps = torch.tensor([s.steps for s in states], dtype=torch.int64)
    env.set_state(physics, steps)


def step_matches_spec(
    make_env: MakeCartPole, *, dtype: torch.dtype = torch.float64
) -> Callable[[], None]:
    """One batched step from arbitrary states (near the bounds too) agrees with `spec.step`.

    Also checks the same-step auto-reset: done copies restart within the reset bounds with step
    count 0, the others keep the successor they returned.

    Assumes `make_env(num_envs, params, dtype)` builds a CartPole with `get_state` /
    `set_state` that takes int64 actions on the CPU, steps copies independently and autoresets
    on the same step (reset physics within `params.reset_bound`, either reset noise); compares
    to `CARTPOLE_STEP_TOL[dtype]` from the state rounded to `dtype`, with termination and reward
    left free within that tolerance of a threshold. Accepts any order of the Euler or
    semi-implicit Euler operations, any integrator and reward flavour of `spec.Params`, and any
    reset generator (reset states are only bounded, never replayed).
    """
    tol = CARTPOLE_STEP_TOL[dtype]

    @given(params=_PARAMS, states=cartpole_batches(), data=st.data())
    def prop(params: spec.Params, states: list[spec.State], data: st.DataObject) -> None:
        actions = data.draw(action_sequences(2, min_size=len(states), max_size=len(states)))
        env = make_env(len(states), params, dtype)
        states = [_rounded(s, dtype) for s in states]
        set_states(env, states, dtype)
        out = env.step(torch.tensor(actions, dtype=torch.int64))
        check_step(params, states, actions, out, tol)
        check_auto_reset(params, env, out, dtype)

    return prop


def trajectory_matches_spec(make_env: MakeCartPole) -> Callable[[], None]:
    """Float64 episodes: a batched CartPole and per-copy spec twins stay within tolerance.

    Where a copy is done, its spec twin continues from the copy's reset state.

    Assumes a float64 environment as `step_matches_spec` does, for up to 60 steps, within
    `FLOAT64_TRAJECTORY_TOL`; where rounding decides a termination near a threshold differently,
    the twin follows the environment. Accepts any float64 implementation whose error does not
    grow past that tolerance over an episode; float32 copies are checked by `step_matches_spec`.
    """

    @given(
        params=_PARAMS,
        start=st.lists(cartpole_physics(), min_size=1, max_size=4),
        data=st.data(),
    )
    def prop(params: spec.Params, start: list[np.ndarray], data: st.DataObject) -> None:
        n = len(start)
        horizon = data.draw(st.integers(1, 60), label="horizon")
        actions = data.draw(
            st.lists(
                action_sequences(2, min_size=n, max_size=n), min_size=horizon, max_size=horizon
            )
        )
        env = make_env(n, params, torch.float64)
        twins = [spec.State.from_physics(p) for p in start]
        set_states(env, twins, torch.float64)
        for t, step_actions in enumerate(actions):
            out = env.step(torch.tensor(step_actions, dtype=torch.int64))
            try:
                expected = check_step(params, twins, step_actions, out, FLOAT64_TRAJECTORY_TOL)
            except AssertionError as error:
                raise AssertionError(f"at step {t}: {error}") from error
            physics, steps = env.get_state()
            twins = [
                spec.State.from_physics(physics[i].numpy(), int(steps[i]))
                if bool(out.terminated[i] | out.truncated[i]) or want.terminated
                else want.state
                for i, want in enumerate(expected)
            ]

    return prop
