"""A stateful model check: a batched classic-control twin beside N spec environments.

`classic_control_machine(env_id, make_env)` returns a Hypothesis `RuleBasedStateMachine` class
(like `properties.env_machine.cartpole_machine` for CartPole) whose rules reset the batched
environment with a seed, step it with drawn actions (continuous ones also outside their box),
and move copies next to the discontinuities and the time limit before stepping. Every step is
compared with the spec by `properties.classic_control.check_step`; after every rule the
observations and step counts must agree with the spec twins. Twins are restarted from their
copies' states after each step, so that each step is measured on its own (Acrobot is chaotic:
whole float64 episodes drift apart by more than one step's tolerance).

Auto-resets are followed in one of two ways:

- `twin_resets=False`: where a copy is done, its twin takes over the copy's reset state (any
  source of reset noise is allowed);
- `twin_resets=True`: twin `i` draws its reset states from `np.random.default_rng(seed + i)` with
  the spec's `reset`, as Gymnasium does, and the copy must hold exactly the same state, rounded
  to the dtype (for the twins built with `reset_noise="gymnasium"`).

Torque noise (Acrobot) is not modelled: give `params` without it.
"""

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from checked_rl.properties.classic_control import (
    KITS,
    MAX_BATCH,
    action_tensor,
    check_auto_reset,
    check_physics,
    check_step,
    observe64,
    set_states,
    tolerance,
)
from checked_rl.spec.envs import mountain_car_continuous

SEEDS = st.integers(0, 2**31 - 1)


def classic_control_machine(
    env_id: str,
    make_env: Callable[[int, Any, torch.dtype], Any],
    *,
    params: Any = None,
    dtype: torch.dtype = torch.float64,
    twin_resets: bool = False,
    max_batch: int = MAX_BATCH,
) -> type[RuleBasedStateMachine]:
    """The state machine class for `env_id`'s twin built by `make_env(n, params, dtype)`.

    Assumes a twin as `properties.classic_control.step_matches_spec` does (`get_state` /
    `set_state`, CPU actions, same-step autoreset), and `reset(seed=...)` deterministic given
    the seed (twice gives equal observations) with every step count 0 and states inside the
    spec's reset box (in float32); no torque noise (refused with a ValueError). Each step is
    compared to `tolerance(spec, dtype)` from the copies' own states, flags left free next to a
    discontinuity. Accepts, with `twin_resets=False`, any source of reset noise; with
    `twin_resets=True`, only twins whose copy `i` draws exactly the spec's `reset` from
    `np.random.default_rng(seed + i)` (Gymnasium's seeding), compared bit for bit in `dtype`.
    """
    kit = KITS[env_id]
    spec = kit.spec
    params = spec.Params() if params is None else params
    if getattr(params, "torque_noise_max", 0.0) > 0:
        raise ValueError("classic_control_machine: torque noise is not modelled; use none")
    tol = tolerance(spec, dtype)
    low, high = (np.float32(bound) for bound in kit.reset_box(params))

    class ClassicControlMachine(RuleBasedStateMachine):
        """A batched environment and its spec twins, stepped side by side."""

        def __init__(self) -> None:
            super().__init__()
            self.env: Any = None
            self.twins: list[Any] = []
            self.rngs: list[np.random.Generator] = []

        @initialize(n=st.integers(1, max_batch), seed=SEEDS)
        def create(self, n: int, seed: int) -> None:
            self.env = make_env(n, params, dtype)
            self.reset_with_seed(seed)

        @rule(seed=st.one_of(st.none(), SEEDS))
        def reset_with_seed(self, seed: int | None) -> None:
            """`reset(seed)` restarts every copy; with a seed, twice gives the same states."""
            observations = self.env.reset(seed=seed)
            if seed is not None:
                assert torch.equal(self.env.reset(seed=seed), observations), (
                    f"reset(seed={seed}) twice gave different observations"
                )
                self.rngs = [np.random.default_rng(seed + i) for i in range(self.env.num_envs)]
            physics, steps = self.env.get_state()
            assert steps.tolist() == [0] * self.env.num_envs, f"step counts after reset: {steps}"
            rows = physics.double().cpu().numpy()
            assert np.all((low <= rows) & (rows <= high)), f"reset states {rows.tolist()}"
            if twin_resets and self.rngs:
                self.twins = [spec.reset(params, rng)[0] for rng in self.rngs]
                self._assert_twin_resets(range(self.env.num_envs))
            else:
                self.twins = self._copies(stepped=False)

        @rule(data=st.data())
        def step_random(self, data: st.DataObject) -> None:
            """Step every copy with drawn actions and compare with the twins."""
            self._step(data)

        @precondition(lambda self: not twin_resets)
        @rule(data=st.data())
        def step_near_bounds(self, data: st.DataObject) -> None:
            """Move every copy next to a discontinuity (or the time limit), then step it."""
            n = self.env.num_envs
            states = data.draw(st.lists(kit.states(params), min_size=n, max_size=n))
            set_states(self.env, states, dtype)
            self.twins = self._copies(stepped=False)
            self._step(data)

        @invariant()
        def observations_and_counts_match_twins(self) -> None:
            if self.env is None:
                return
            _, steps = self.env.get_state()
            observed = self.env.observe().double().cpu().numpy()
            for i, twin in enumerate(self.twins):
                assert int(steps[i]) == twin.steps, f"env {i}: steps {int(steps[i])}, {twin}"
                np.testing.assert_allclose(
                    observed[i], observe64(spec, twin), rtol=tol, atol=tol,
                    err_msg=f"observe()[env {i}] against its spec twin",
                )  # fmt: skip

        def _step(self, data: st.DataObject) -> None:
            n = self.env.num_envs
            actions = data.draw(st.lists(kit.actions, min_size=n, max_size=n), label="actions")
            out = self.env.step(action_tensor(kit, actions))
            expected = check_step(kit, params, self.twins, actions, out, tol)
            check_physics(kit, params, self.env, out, expected, tol)
            check_auto_reset(kit, params, self.env, out)
            done = (out.terminated | out.truncated).tolist()
            copies = self._copies(stepped=True, done=done)
            fresh = []
            for i in range(n):
                if done[i] and twin_resets:
                    self.twins[i] = spec.reset(params, self.rngs[i])[0]
                    fresh.append(i)
                else:
                    self.twins[i] = copies[i]
            self._assert_twin_resets(fresh)

        def _copies(self, *, stepped: bool, done: list[bool] | None = None) -> list[Any]:
            """The copies' states as spec states (MountainCarContinuous: stored in float32
            after a step, float64 after a reset)."""
            physics, steps = self.env.get_state()
            states = []
            for i in range(self.env.num_envs):
                row, count = physics[i].double().cpu().numpy(), int(steps[i])
                if spec is mountain_car_continuous:
                    single = stepped and not (done and done[i])
                    states.append(spec.State.from_physics(row, count, single))
                else:
                    states.append(spec.State.from_physics(row, count))
            return states

        def _assert_twin_resets(self, envs: Iterable[int]) -> None:
            """The listed copies hold exactly their twins' reset states, rounded to `dtype`."""
            physics, _ = self.env.get_state()
            np_dtype = np.float32 if dtype == torch.float32 else np.float64
            for i in envs:
                want = self.twins[i].physics().astype(np_dtype)
                got = physics[i].cpu().numpy()
                assert np.array_equal(got, want), (
                    f"env {i} reset to {got}, its Gymnasium-seeded twin to {want}"
                )

    ClassicControlMachine.__name__ = f"{env_id.split('-')[0]}Machine"
    return ClassicControlMachine
