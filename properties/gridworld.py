"""Properties: GridWorld's batched twin and its tabular view agree with `spec.envs.gridworld`.

Factories, as everywhere in `properties`: `step_matches_spec(make_env)` takes a callable
`make_env(num_envs, params, dtype)` building the batched environment under test, which must
implement `runtime.envs.base.BatchedEnv` plus `get_state() -> (cells [N, 2], steps [N])` and
`set_state(cells, steps)`; `tabular_matches_step(tabular)` takes the function building the
tabular view. Everything here is integer arithmetic, so agreement is exact.
"""

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from properties.strategies.envs import MAX_BATCH, action_sequences, gridworld_params
from properties.strategies.envs import gridworld_states as states_of
from runtime.envs.base import EnvStep
from spec.envs import gridworld as spec
from spec.mdp import TabularMDP


class StatefulGridWorld(Protocol):
    """A batched GridWorld whose state can be read and written (what these properties need)."""

    num_envs: int

    def step(self, actions: Tensor) -> EnvStep: ...
    def observe(self) -> Tensor: ...
    def get_state(self) -> tuple[Tensor, Tensor]: ...
    def set_state(self, cells: Tensor, steps: Tensor) -> None: ...


MakeGridWorld = Callable[[int, spec.Params, torch.dtype], StatefulGridWorld]


def step_matches_spec(
    make_env: MakeGridWorld, *, dtype: torch.dtype = torch.float32
) -> Callable[[], None]:
    """One batched step from any cells agrees exactly with `spec.step`, auto-reset included."""

    @given(params=gridworld_params(), data=st.data())
    def prop(params: spec.Params, data: st.DataObject) -> None:
        states = data.draw(st.lists(states_of(params), min_size=1, max_size=MAX_BATCH))
        n = len(states)
        actions = data.draw(action_sequences(spec.N_ACTIONS, min_size=n, max_size=n))
        env = make_env(n, params, dtype)
        env.set_state(
            torch.tensor([(s.row, s.col) for s in states], dtype=torch.int64),
            torch.tensor([s.steps for s in states], dtype=torch.int64),
        )
        out = env.step(torch.tensor(actions, dtype=torch.int64))
        observed = env.observe()
        _, start_observation = spec.reset(params, np.random.default_rng(0))
        for i, (state, action) in enumerate(zip(states, actions, strict=True)):
            want = spec.step(params, state, action)
            where = f"env {i} at {state} under action {action}"
            np.testing.assert_array_equal(
                out.next_observation[i].cpu().numpy(), want.observation, err_msg=where
            )
            assert float(out.reward[i]) == want.reward, f"reward, {where}"
            assert bool(out.terminated[i]) == want.terminated, f"terminated, {where}"
            assert bool(out.truncated[i]) == want.truncated, f"truncated, {where}"
            after = start_observation if want.terminated or want.truncated else want.observation
            np.testing.assert_array_equal(
                observed[i].cpu().numpy(), after, err_msg=f"observe() after the step, {where}"
            )

    return prop


def tabular_matches_step(
    tabular: Callable[[spec.Params], TabularMDP] = spec.tabular,
) -> Callable[[], None]:
    """`P[s, a]` puts all mass on `spec.step`'s next cell and `R[s, a]` is its reward.

    Checked for every state and action of the layout; the goal is absorbing with reward 0.
    """

    @given(params=gridworld_params())
    def prop(params: spec.Params) -> None:
        mdp = tabular(params)
        goal = spec.index(params, *params.goal)
        assert mdp.terminal.tolist() == [s == goal for s in range(params.n_states)]
        for row in range(params.height):
            for col in range(params.width):
                s = spec.index(params, row, col)
                for a in range(spec.N_ACTIONS):
                    expected = np.zeros(params.n_states)
                    if s == goal:
                        expected[goal] = 1.0
                        reward = spec.GOAL_REWARD
                    else:
                        out = spec.step(params, spec.State(row, col), a)
                        expected[spec.index(params, out.state.row, out.state.col)] = 1.0
                        reward = out.reward
                    np.testing.assert_array_equal(mdp.P[s, a], expected, err_msg=f"P[{s}, {a}]")
                    assert mdp.R[s, a] == reward, f"R[{s}, {a}] = {mdp.R[s, a]}, step: {reward}"

    return prop
