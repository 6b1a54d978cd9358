"""The contract on host values: what Python environments hand over one environment at a time.

Sessions that step environments one by one (spec environments, Gymnasium environments in this
process or in bridge servers) receive an observation and a reward per environment before there
is a batch to check. A value that cannot become one (an observation of the wrong shape or dtype,
a reward that is not a real number) is rejected here, naming its environment and step, before
stacking could fail or silently convert it; the batch then goes through
`runtime.contract.check_transition` like every other.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from checked_rl.runtime.contract.records import ContractViolation
from checked_rl.spec import contract as spec_contract
from checked_rl.spec.contract import Violation

__all__ = ["check_host_observations", "observation_structure_violation", "real_reward"]


def observation_structure_violation(
    contract: spec_contract.Contract,
    kind: str,
    value: Any,
    *,
    field: str,
    env: int,
    step: int | None,
) -> ContractViolation:
    """The `ContractViolation` of one environment's observation of the wrong shape or dtype.

    Args:
        contract: the rules; its `observation_shape` or `observation_dtype` is the expectation.
        kind: "shape" or "dtype".
        value: the observation's shape (any sequence of ints) or dtype (anything `np.dtype`
            takes, such as its name).
        field: "observation" or "next_observation".
        env: the environment's index in the batch.
        step: the step index, None for observations of a reset.
    """
    if kind == "shape":
        found, expected = tuple(value), str(contract.observation_shape)
    elif kind == "dtype":
        found, expected = np.dtype(value), str(contract.observation_dtype)
    else:
        raise ValueError(
            f"observation_structure_violation: kind must be 'shape' or 'dtype', got {kind!r}"
        )
    return ContractViolation([Violation(kind, field, env, step, None, found, expected)])


def check_host_observations(
    contract: spec_contract.Contract,
    observations: Sequence[Any],
    *,
    field: str,
    step: int | None,
) -> Tensor:
    """Per-environment host observations stacked into a CPU tensor `[N, *S]`, once each has
    the contract's shape and dtype.

    Args:
        contract: the rules.
        observations: one array-like observation per environment.
        field: "observation" or "next_observation", for the message.
        step: the step index, None for observations of a reset.

    Raises:
        ContractViolation: the first environment whose observation has the wrong shape or
            dtype (shape checked first), named with `field` and `step`.
    """
    arrays = [np.asarray(observation) for observation in observations]
    for env, array in enumerate(arrays):
        for kind, value, expected in (
            ("shape", array.shape, contract.observation_shape),
            ("dtype", array.dtype, contract.observation_dtype),
        ):
            if value != expected:
                raise observation_structure_violation(
                    contract, kind, value, field=field, env=env, step=step
                )
    return torch.from_numpy(np.stack(arrays))


def real_reward(value: Any, *, env: int, step: int) -> float:
    """`value`, one environment's reward, as a float.

    Raises:
        ContractViolation: `value` is not a real number (`float(value)` fails), naming its
            type, the environment and the step.
    """
    try:
        return float(value)
    except (TypeError, ValueError):
        kind = type(value).__name__
        raise ContractViolation(
            [Violation("dtype", "reward", env, step, None, kind, "a real number")]
        ) from None
