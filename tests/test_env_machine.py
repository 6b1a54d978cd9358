"""The batched torch CartPole beside N spec CartPoles, driven by a Hypothesis state machine."""

import unittest

import torch
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine

from checked_rl.properties.env_machine import cartpole_machine
from checked_rl.runtime.envs.cartpole import CartPole
from checked_rl.spec.envs import cartpole

STEPS_PER_RUN = 25  # rules per generated run: enough to cross several episodes


def _make(reset_noise: str):
    def make(num_envs: int, params: cartpole.Params, dtype: torch.dtype) -> CartPole:
        return CartPole(num_envs, params, dtype=dtype, reset_noise=reset_noise, seed=0)

    return make


def _bounded(machine: type[RuleBasedStateMachine]) -> type[unittest.TestCase]:
    """The machine's TestCase, limited to `STEPS_PER_RUN` rules per run."""
    machine.TestCase.settings = settings(stateful_step_count=STEPS_PER_RUN)
    return machine.TestCase


TestTorchResetsFloat64 = _bounded(cartpole_machine(_make("torch")))
TestTorchResetsFloat32 = _bounded(cartpole_machine(_make("torch"), dtype=torch.float32))
TestGymnasiumResets = _bounded(cartpole_machine(_make("gymnasium"), twin_resets=True))
TestSemiImplicitSuttonBarto = _bounded(
    cartpole_machine(
        _make("torch"),
        params=cartpole.Params(integrator="semi-implicit euler", sutton_barto_reward=True),
    )
)
