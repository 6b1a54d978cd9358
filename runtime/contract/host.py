"""The contract on host values: what Python environments hand over one environment at a time.

Sessions that step environments one by one (spec environments, Gymnasium environments in this
process or in bridge servers) receive an observation and a reward per environment before there
is a batch to check. A value that cannot become one (a result that is not the tuple Gymnasium
defines, an observation of the wrong shape or dtype, a reward that is not a real scalar, a flag
that is not a bool) is rejected here by the rules of `spec.host_values`, naming its environment
and step, before stacking could fail or silently convert it; the batch then goes through
`runtime.contract.check_transition` like every other.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from checked_rl.runtime.contract.records import ContractViolation
from checked_rl.spec import contract as spec_contract
from checked_rl.spec import host_values
from checked_rl.spec.contract import Violation

__all__ = [
    "check_host_observations",
    "host_result",
    "observation_structure_violation",
    "real_flag",
    "real_reward",
]


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
    the contract's shape and dtype (in either byte order: `spec.host_values.observation_value`).

    Args:
        contract: the rules.
        observations: one array-like observation per environment.
        field: "observation" or "next_observation", for the message.
        step: the step index, None for observations of a reset.

    Raises:
        ContractViolation: the first environment whose observation has the wrong shape or
            dtype (shape checked first), named with `field` and `step`.
    """
    arrays = []
    for env, observation in enumerate(observations):
        array, violation = host_values.observation_value(
            observation,
            contract.observation_shape,
            contract.observation_dtype,
            field=field,
            env=env,
            step=step,
        )
        if violation is not None:
            raise ContractViolation([violation])
        arrays.append(array)
    return torch.from_numpy(np.stack(arrays))


def real_reward(value: Any, *, env: int, step: int | None) -> float:
    """`value`, one environment's reward, as a float (`spec.host_values.reward_value`).

    Raises:
        ContractViolation: `value` is not a real scalar (a string, a complex number, an array
            with entries, ...), naming its type, the environment and the step.
    """
    reward, violation = host_values.reward_value(value, env=env, step=step)
    if violation is not None:
        raise ContractViolation([violation])
    return reward


def real_flag(value: Any, name: str, *, env: int, step: int | None) -> bool:
    """`value`, one environment's `terminated` or `truncated`, as a bool.

    Raises:
        ContractViolation: `value` is not a bool or `numpy.bool_` (`spec.host_values.flag_value`).
    """
    flag, violation = host_values.flag_value(value, name, env=env, step=step)
    if violation is not None:
        raise ContractViolation([violation])
    return flag


def host_result(result: Any, call: str, *, env: int, step: int | None) -> tuple[Any, ...]:
    """A reset (`call` "reset") or step ("step") result as its tuple of 2 or 5.

    Raises:
        ContractViolation: `result` is not such a tuple (`spec.host_values.result_value`).
    """
    values, violation = host_values.result_value(result, call, env=env, step=step)
    if violation is not None:
        raise ContractViolation([violation])
    assert values is not None
    return values
