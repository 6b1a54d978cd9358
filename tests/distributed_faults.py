"""An environment that fails on one rank of a distributed run only, for the failure test.

Importing this module registers `tests.distributed_faults:RaiseOnRankOne-v0`: `faulty_envs`'
`Drift` everywhere, except in a process whose `RANK` is 1, where `step` raises at step
`FAULT_STEP` after a reset (`RaiseInStep`): with a horizon of 8, during the third update.
"""

import os
from typing import Any

import gymnasium as gym
import numpy as np

from tests.faulty_envs import Drift, RaiseInStep

ENV_ID = "RaiseOnRankOne-v0"
FAILING_RANK = "1"
FAULT_STEP = 20


class RaiseOnRankOne(RaiseInStep):
    """`RaiseInStep` on rank 1, the well-behaved `Drift` on every other rank."""

    def fault(self, observation: np.ndarray, reward: float) -> tuple[np.ndarray, Any]:
        if os.environ.get("RANK") == FAILING_RANK:
            return super().fault(observation, reward)
        return Drift.fault(self, observation, reward)


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=RaiseOnRankOne, kwargs={"fault_step": FAULT_STEP})
