"""The batched classic-control twins beside N spec environments, driven by a state machine."""

import unittest

import numpy as np
import pytest
import torch
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from checked_rl.properties.classic_control_machine import classic_control_machine
from checked_rl.runtime.envs.acrobot import Acrobot
from checked_rl.runtime.envs.mountain_car import MountainCar, MountainCarContinuous
from checked_rl.runtime.envs.pendulum import Pendulum
from checked_rl.spec.envs import acrobot, mountain_car, pendulum

STEPS_PER_RUN = 20  # rules per generated run
RUNS = settings(max_examples=12, stateful_step_count=STEPS_PER_RUN, deadline=None)
TWINS = {
    "Acrobot-v1": Acrobot,
    "MountainCar-v0": MountainCar,
    "MountainCarContinuous-v0": MountainCarContinuous,
    "Pendulum-v1": Pendulum,
}
SHORT = {  # short time limits, so that runs cross several episodes
    "Acrobot-v1": acrobot.Params(max_episode_steps=6),
    "MountainCar-v0": mountain_car.Params(max_episode_steps=6),
    "Pendulum-v1": pendulum.Params(max_episode_steps=6),
}


def _make(cls, reset_noise: str):
    def make(num_envs, params, dtype):
        return cls(num_envs, params, dtype=dtype, reset_noise=reset_noise, seed=0)

    return make


def _case(machine: type[RuleBasedStateMachine]) -> type[unittest.TestCase]:
    machine.TestCase.settings = RUNS
    return machine.TestCase


TestAcrobotFloat64 = _case(classic_control_machine("Acrobot-v1", _make(Acrobot, "torch")))
TestAcrobotNipsFloat32 = _case(
    classic_control_machine(
        "Acrobot-v1", _make(Acrobot, "torch"), dtype=torch.float32,
        params=acrobot.Params(dynamics="nips", max_episode_steps=8),
    )
)  # fmt: skip
TestMountainCarFloat32 = _case(
    classic_control_machine("MountainCar-v0", _make(MountainCar, "torch"), dtype=torch.float32)
)
TestMountainCarContinuous = _case(
    classic_control_machine("MountainCarContinuous-v0", _make(MountainCarContinuous, "torch"))
)
TestPendulumFloat32 = _case(
    classic_control_machine("Pendulum-v1", _make(Pendulum, "torch"), dtype=torch.float32)
)


@pytest.mark.parametrize("env_id", TWINS)
def test_gymnasium_seeded_twins_reset_exactly(env_id: str) -> None:
    machine = classic_control_machine(
        env_id, _make(TWINS[env_id], "gymnasium"), params=SHORT.get(env_id), twin_resets=True
    )
    run_state_machine_as_test(machine, settings=RUNS)


class SameSeedPendulum(Pendulum):
    """Seeds every copy with `seed` itself instead of `seed + i`."""

    def reset(self, seed=None):
        if seed is not None and self.reset_noise == "gymnasium":
            observations = super().reset(seed)
            self._rngs = [np.random.default_rng(seed) for _ in range(self.num_envs)]
            self._physics = self._gymnasium_resets(range(self.num_envs))
            self._observation = self.observation(self._physics)
            return observations * 0 + self._observation
        return super().reset(seed)


class StepCountKeptCar(MountainCar):
    """Resets the physics of done copies but not their step counts."""

    def step(self, actions):
        steps = self._steps + 1
        out = super().step(actions)
        self._steps = steps
        return out


@pytest.mark.parametrize(
    ("env_id", "buggy", "twin_resets"),
    [("Pendulum-v1", SameSeedPendulum, True), ("MountainCar-v0", StepCountKeptCar, False)],
)
def test_buggy_twins_fail_the_machine(env_id: str, buggy, twin_resets: bool) -> None:
    noise = "gymnasium" if twin_resets else "torch"
    machine = classic_control_machine(
        env_id, _make(buggy, noise), params=SHORT[env_id], twin_resets=twin_resets
    )
    with pytest.raises((AssertionError, ExceptionGroup)):
        run_state_machine_as_test(
            machine, settings=settings(RUNS, max_examples=100, stateful_step_count=30)
        )


def test_torque_noise_is_refused() -> None:
    with pytest.raises(ValueError, match="torque noise is not modelled"):
        classic_control_machine(
            "Acrobot-v1", _make(Acrobot, "torch"), params=acrobot.Params(torque_noise_max=0.1)
        )
