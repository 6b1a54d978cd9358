"""Assembling the outcomes of environments stepped one at a time into a batched `EnvStep`."""

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from checked_rl.runtime.contract import Contract, check_host_observations
from checked_rl.runtime.envs.base import EnvStep

__all__ = ["host_actions", "host_env_step"]


def host_env_step(
    contract: Contract,
    next_observations: Sequence[Any],
    rewards: Sequence[float],
    terminated: Sequence[bool],
    truncated: Sequence[bool],
    *,
    reward_dtype: torch.dtype,
    step: int,
) -> EnvStep:
    """Assemble the per-environment outcomes of one step into a CPU `EnvStep`.

    For sessions that step environments one by one; the observations go through
    `runtime.contract.check_host_observations`, which names an environment whose observation
    has the wrong shape or dtype.
    """
    return EnvStep(
        next_observation=check_host_observations(
            contract, next_observations, field="next_observation", step=step
        ),
        reward=torch.tensor(rewards, dtype=reward_dtype),
        terminated=torch.tensor(terminated, dtype=torch.bool),
        truncated=torch.tensor(truncated, dtype=torch.bool),
    )


def host_actions(actions: Tensor) -> list[Any]:
    """One action per environment for a Python environment's `step`: a Python int for
    discrete actions `[N]`, a NumPy array `[*A]` (a copy, in the actions' dtype) for continuous
    actions `[N, *A]`."""
    if not actions.is_floating_point():
        return actions.tolist()
    return [row.copy() for row in actions.cpu().numpy()]
