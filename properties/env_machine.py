"""A stateful model check: a batched CartPole beside N spec CartPoles, step after step.

`cartpole_machine(make_env)` returns a Hypothesis `RuleBasedStateMachine` class whose rules
reset the batched environment with a seed, step it with random actions, and move copies next to
the termination bounds (or the time limit) before stepping. After every rule it checks that the
observations, step counts, rewards and flags agree with the spec twins. Run it with
`run_state_machine_as_test` or through its `TestCase` attribute; bound the number of steps with
`settings(stateful_step_count=...)`.

Auto-resets are followed in one of two ways:

- `twin_resets=False`: where a copy is done, its twin takes over the copy's reset state
  (any source of reset noise is allowed);
- `twin_resets=True`: twin `i` draws its own reset states from `np.random.default_rng(seed + i)`
  as Gymnasium does, and the batched copy must hold exactly the same float64 state (for
  `runtime.envs.cartpole.CartPole(..., reset_noise="gymnasium")`).

Float64 twins run side by side untouched, to `FLOAT64_TRAJECTORY_TOL`; float32 copies are
compared step by step, each twin restarted from its copy's rounded state, to `FLOAT32_STEP_TOL`
(both in `properties.tolerances`).
"""

from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from checked_rl.properties.cartpole import StatefulCartPole, check_step, set_states
from checked_rl.properties.strategies.envs import (
    MAX_BATCH,
    SEEDS,
    action_sequences,
    cartpole_states,
)
from checked_rl.properties.tolerances import (
    FLOAT32_STEP_TOL,
    FLOAT64_TRAJECTORY_TOL,
    round_to_dtype,
)
from checked_rl.spec.envs import cartpole as spec


class ResettableCartPole(StatefulCartPole, Protocol):
    """A stateful batched CartPole that can also be reset with a seed."""

    def reset(self, seed: int | None = None) -> torch.Tensor: ...


def cartpole_machine(
    make_env: Callable[[int, spec.Params, torch.dtype], ResettableCartPole],
    *,
    params: spec.Params | None = None,
    dtype: torch.dtype = torch.float64,
    twin_resets: bool = False,
    max_batch: int = MAX_BATCH,
) -> type[RuleBasedStateMachine]:
    """The state machine class for the batched CartPole built by `make_env(n, params, dtype)`.

    Assumes a CartPole with `get_state` / `set_state` and `reset(seed=...)` that takes int64
    CPU actions and autoresets on the same step, whose seeded reset is deterministic (twice
    gives equal observations) with step counts 0 and states within `params.reset_bound`, and
    whose `observe()` is its physics in its dtype. Float64 twins run on untouched to
    `FLOAT64_TRAJECTORY_TOL`; float32 copies are compared step by step to `FLOAT32_STEP_TOL`.
    Accepts, with `twin_resets=False`, any source of reset noise; with `twin_resets=True`, only
    environments whose copy `i` draws the spec's `reset` from `np.random.default_rng(seed + i)`
    (an unseeded reset going on with the same generator, as in Gymnasium), bit for bit.
    """
    params = spec.Params() if params is None else params
    tol = FLOAT64_TRAJECTORY_TOL if dtype == torch.float64 else FLOAT32_STEP_TOL

    class CartPoleMachine(RuleBasedStateMachine):
        """A batched CartPole and its spec twins, stepped side by side."""

        def __init__(self) -> None:
            super().__init__()
            self.env: ResettableCartPole | None = None
            self.twins: list[spec.State] = []
            self.rngs: list[np.random.Generator] = []

        @initialize(n=st.integers(1, max_batch), seed=SEEDS)
        def create(self, n: int, seed: int) -> None:
            self.env = make_env(n, params, dtype)
            self.reset_with_seed(seed)

        @rule(seed=st.one_of(st.none(), SEEDS))
        def reset_with_seed(self, seed: int | None) -> None:
            """`reset(seed)` restarts every copy; with a seed, twice gives the same states."""
            assert self.env is not None
            observations = self.env.reset(seed=seed)
            if seed is not None:
                assert torch.equal(self.env.reset(seed=seed), observations), (
                    f"reset(seed={seed}) twice gave different observations"
                )
                self.rngs = [np.random.default_rng(seed + i) for i in range(self.env.num_envs)]
            physics, steps = self.env.get_state()
            assert steps.tolist() == [0] * self.env.num_envs, f"step counts after reset: {steps}"
            assert bool(torch.all(physics.abs() <= params.reset_bound)), (
                f"reset states outside ±{params.reset_bound}: {physics.tolist()}"
            )
            if twin_resets and self.rngs:
                self.twins = [spec.reset(params, rng)[0] for rng in self.rngs]
                self._assert_twin_resets(range(self.env.num_envs))
            else:
                self.twins = self._copies()

        @rule(data=st.data())
        def step_random(self, data: st.DataObject) -> None:
            """Step every copy with random actions and compare with the twins."""
            assert self.env is not None
            n = self.env.num_envs
            self._step(data.draw(action_sequences(2, min_size=n, max_size=n), label="actions"))

        @precondition(lambda self: not twin_resets)
        @rule(data=st.data())
        def step_near_bounds(self, data: st.DataObject) -> None:
            """Move every copy next to a bound (or the time limit), then step it."""
            assert self.env is not None
            n = self.env.num_envs
            states = data.draw(st.lists(cartpole_states(params), min_size=n, max_size=n))
            set_states(self.env, states, dtype)
            self.twins = self._copies()
            self._step(data.draw(action_sequences(2, min_size=n, max_size=n), label="actions"))

        @invariant()
        def observations_and_counts_match_twins(self) -> None:
            if self.env is None:
                return
            physics, steps = self.env.get_state()
            observed = self.env.observe()
            for i, twin in enumerate(self.twins):
                assert int(steps[i]) == twin.steps, (
                    f"env {i}: step count {int(steps[i])}, spec twin {twin.steps}"
                )
                np.testing.assert_allclose(
                    observed[i].double().cpu().numpy(),
                    twin.physics(),
                    rtol=tol,
                    atol=tol,
                    err_msg=f"observe()[env {i}] against its spec twin",
                )
                assert torch.equal(observed[i], physics[i].to(observed.dtype))

        def _step(self, actions: list[int]) -> None:
            assert self.env is not None
            out = self.env.step(torch.tensor(actions, dtype=torch.int64))
            expected = check_step(params, self.twins, actions, out, tol)
            copies = self._copies()
            done = (out.terminated | out.truncated).tolist()
            fresh = []
            for i, want in enumerate(expected):
                if done[i] and twin_resets:
                    self.twins[i] = spec.reset(params, self.rngs[i])[0]
                    fresh.append(i)
                elif done[i] or want.terminated or dtype != torch.float64:
                    self.twins[i] = copies[i]
                else:
                    self.twins[i] = want.state
            self._assert_twin_resets(fresh)

        def _copies(self) -> list[spec.State]:
            """The batched copies' current states as spec states."""
            assert self.env is not None
            physics, steps = self.env.get_state()
            return [
                spec.State.from_physics(physics[i].double().cpu().numpy(), int(steps[i]))
                for i in range(self.env.num_envs)
            ]

        def _assert_twin_resets(self, envs: Iterable[int]) -> None:
            """The listed copies hold exactly their twins' reset states, rounded to `dtype`."""
            copies = self._copies()
            for i in envs:
                want = round_to_dtype(self.twins[i].physics(), dtype)
                assert np.array_equal(copies[i].physics(), want), (
                    f"env {i} reset to {copies[i].physics()}, its Gymnasium-seeded twin to {want}"
                )

    return CartPoleMachine
