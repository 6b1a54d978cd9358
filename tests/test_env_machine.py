"""The batched torch CartPole beside N spec CartPoles, driven by a Hypothesis state machine."""

import torch
from hypothesis import settings

from properties.env_machine import cartpole_machine
from runtime.envs.cartpole import CartPole
from spec.envs import cartpole

STEPS_PER_RUN = 25  # rules per generated run: enough to cross several episodes


def _make(reset_noise: str):
    def make(num_envs: int, params: cartpole.Params, dtype: torch.dtype) -> CartPole:
        return CartPole(num_envs, params, dtype=dtype, reset_noise=reset_noise, seed=0)

    return make


_BOUNDED = settings(stateful_step_count=STEPS_PER_RUN)

TorchResetsFloat64 = cartpole_machine(_make("torch"))
TorchResetsFloat64.TestCase.settings = _BOUNDED
TestTorchResetsFloat64 = TorchResetsFloat64.TestCase

TorchResetsFloat32 = cartpole_machine(_make("torch"), dtype=torch.float32)
TorchResetsFloat32.TestCase.settings = _BOUNDED
TestTorchResetsFloat32 = TorchResetsFloat32.TestCase

GymnasiumResets = cartpole_machine(_make("gymnasium"), twin_resets=True)
GymnasiumResets.TestCase.settings = _BOUNDED
TestGymnasiumResets = GymnasiumResets.TestCase

SemiImplicitSuttonBarto = cartpole_machine(
    _make("torch"),
    params=cartpole.Params(integrator="semi-implicit euler", sutton_barto_reward=True),
)
SemiImplicitSuttonBarto.TestCase.settings = _BOUNDED
TestSemiImplicitSuttonBarto = SemiImplicitSuttonBarto.TestCase
