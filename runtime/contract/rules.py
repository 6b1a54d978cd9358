"""The contract on whole batches in torch: `Contract`, `check_transition`, `check_observation`.

`Contract` is `spec.contract.Contract` with constructors from Gymnasium spaces and
environments. `check_transition` checks a whole batch against a contract: on the CPU first by
one compiled pass (`runtime.contract.screen`), which can only prove a batch valid; where it
cannot, with a handful of reductions and one host synchronisation (the fast check, in
`runtime.contract.extremes`); only when that fast check fails too does it compute the detailed
report, by running the reference predicate `spec.contract.violations` on a host copy, and
raise `ContractViolation` with its FIRST violation (in the reference's order: shapes and
dtypes, then environment by environment).
"""

import dataclasses
from dataclasses import dataclass
from typing import Any, Self

import gymnasium
import numpy as np
import torch
from jaxtyping import Shaped
from torch import Tensor

from checked_rl.runtime.contract import report, screen
from checked_rl.runtime.contract.actions import action_structure_matches
from checked_rl.runtime.contract.extremes import contract_limits, values_valid
from checked_rl.runtime.contract.records import (
    TORCH_TO_NUMPY,
    ContractViolation,
    Transition,
    numpy_dtype,
    to_numpy,
)
from checked_rl.runtime.envs.base import BatchedEnv
from checked_rl.runtime.shapes import typechecked
from checked_rl.spec import contract as spec_contract
from checked_rl.spec.contract import Violation
from checked_rl.spec.envs.base import Box, Environment

__all__ = ["Contract", "check_observation", "check_transition"]


@dataclass(frozen=True, eq=False)
class Contract(spec_contract.Contract):
    """`spec.contract.Contract`, derivable from Gymnasium spaces and from environments.

    Every constructor takes keyword overrides for any field (`finite_rewards=False`,
    `reward_range=(0.0, 1.0)`, `exclusive_flags=True`, ...); `replace` overrides fields of an
    existing contract.
    """

    @classmethod
    def from_spaces(
        cls, observation_space: gymnasium.Space, action_space: gymnasium.Space, **overrides: Any
    ) -> Self:
        """The contract of a `Box` observation space and a `Discrete(n)` or `Box` action space.

        Observation shape, dtype and bounds come from the `Box`, `n_actions` from the
        `Discrete` space, which must start at 0, or `action_box` from a `Box` action space of a
        floating dtype. Any other space is refused.
        """
        if not isinstance(observation_space, gymnasium.spaces.Box):
            raise ValueError(
                f"Contract.from_spaces: expected a gymnasium.spaces.Box observation space, "
                f"got {observation_space!r}"
            )
        actions = _action_fields(action_space)
        if actions is None:
            raise ValueError(
                f"Contract.from_spaces: expected a gymnasium.spaces.Discrete(n) action space "
                f"starting at 0 or a Box of a floating dtype, got {action_space!r}"
            )
        fields = {
            **actions,
            "observation_shape": tuple(observation_space.shape),
            "observation_dtype": observation_space.dtype,
            "observation_low": np.asarray(observation_space.low, dtype=np.float64),
            "observation_high": np.asarray(observation_space.high, dtype=np.float64),
        }
        return cls._build(fields, overrides, "Contract.from_spaces")

    @classmethod
    def from_env(cls, env: BatchedEnv, **overrides: Any) -> Self:
        """The contract of a runtime `BatchedEnv`: its shape, actions, dtype and bounds."""
        box = getattr(env, "action_box", None)
        fields = {
            "observation_shape": tuple(env.observation_shape),
            "n_actions": None if box is not None else int(env.n_actions),
            "action_box": box,
            "observation_dtype": numpy_dtype(env.dtype),
            "observation_low": _optional_numpy(env.observation_low),
            "observation_high": _optional_numpy(env.observation_high),
        }
        return cls._build(fields, overrides, "Contract.from_env")

    @classmethod
    def from_spec_env(cls, env: Environment, **overrides: Any) -> Self:
        """The contract of a spec `Environment`: its shape, actions, dtype and bounds."""
        fields = {
            "observation_shape": tuple(env.observation_shape),
            "n_actions": env.n_actions,
            "action_box": env.action_space if env.continuous else None,
            "observation_dtype": env.observation_dtype,
            "observation_low": env.observation_low,
            "observation_high": env.observation_high,
        }
        return cls._build(fields, overrides, "Contract.from_spec_env")

    def replace(self, **overrides: Any) -> Self:
        """A copy with the given fields replaced."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return self._build(fields, overrides, "Contract.replace")

    @classmethod
    def _build(cls, fields: dict[str, Any], overrides: dict[str, Any], where: str) -> Self:
        """`cls(**fields)` with `overrides` applied, refusing unknown field names."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"{where}: unknown contract fields {unknown}; valid: {sorted(names)}")
        return cls(**{**fields, **overrides})


def _action_fields(space: gymnasium.Space) -> dict[str, Any] | None:
    """`n_actions` / `action_box` of a Discrete space starting at 0 or a floating Box."""
    if isinstance(space, gymnasium.spaces.Discrete) and not int(space.start):
        return {"n_actions": int(space.n)}
    if isinstance(space, gymnasium.spaces.Box) and np.issubdtype(space.dtype, np.floating):
        box = Box(tuple(space.shape), space.low, space.high, space.dtype)
        return {"n_actions": None, "action_box": box}
    return None


def _optional_numpy(tensor: Tensor | None) -> np.ndarray | None:
    """A host float64 copy of a bound tensor, or None."""
    return None if tensor is None else to_numpy(tensor).astype(np.float64)


def _structure_matches(contract: spec_contract.Contract, observation: Tensor) -> bool:
    """Whether observations `[N, *S]` have the contract's shape `S` and dtype."""
    return (
        observation.ndim >= 1
        and tuple(observation.shape[1:]) == contract.observation_shape
        and TORCH_TO_NUMPY.get(observation.dtype) == contract.observation_dtype
    )


def _reject(violations: list[Violation]) -> None:
    """Raise `ContractViolation` for a batch the fast check rejected."""
    if not violations:
        raise AssertionError(
            "check_transition: the fast check rejected a batch in which the reference "
            "predicate spec.contract.violations finds no violation; please report this"
        )
    raise ContractViolation(violations)


def check_transition(
    contract: spec_contract.Contract, transition: Transition, *, step: int | None = None
) -> None:
    """Raise `ContractViolation` unless every transition of the batch obeys `contract`.

    Agrees with `spec.contract.violations`: it raises exactly when that list is non-empty,
    and the error's message is the list's first violation (all of them in `.violations`).
    The arguments' types are checked explicitly rather than by `@typechecked`, whose cost
    (tens of microseconds) would be a sizeable share of this check.

    Args:
        contract: the rules (a `spec.contract.Contract` or this module's `Contract`).
        transition: the batch, one transition per environment.
        step: the step index, for the message.
    """
    for name, value, expected, public_name in (
        ("contract", contract, spec_contract.Contract, "checked_rl.spec.contract.Contract"),
        ("transition", transition, Transition, "checked_rl.runtime.contract.Transition"),
    ):
        if not isinstance(value, expected):
            raise TypeError(
                f"check_transition: {name} must be a {public_name}, got {type(value).__name__}"
            )
    if step is not None and not isinstance(step, int):
        raise TypeError(f"check_transition: step must be an int or None, got {step!r}")
    if (
        _structure_matches(contract, transition.observation)
        and action_structure_matches(contract, transition.action)
        and (screen.passes(contract, transition) or values_valid(contract, transition))
    ):
        return
    _reject(
        _unmapped_dtype(contract, transition.observation, "observation", step)
        or report.violations(contract, transition.numpy(), step=step)
    )


def _unmapped_dtype(
    contract: spec_contract.Contract, observation: Tensor, field: str, step: int | None
) -> list[Violation]:
    """A dtype violation for observations of a dtype NumPy lacks (bfloat16), else nothing.

    The host copy turns such observations into float32, so the reference cannot see it.
    """
    if observation.dtype in TORCH_TO_NUMPY:
        return []
    dtype = str(observation.dtype).removeprefix("torch.")
    return [Violation("dtype", field, None, step, None, dtype, str(contract.observation_dtype))]


@typechecked
def check_observation(
    contract: spec_contract.Contract,
    observation: Shaped[Tensor, "..."],
    *,
    field: str = "observation",
    step: int | None = None,
) -> None:
    """Raise `ContractViolation` unless every observation of the batch obeys `contract`.

    For observations that come without a transition (those of a reset); agrees with
    `spec.contract.observation_violations`. Any shape is accepted: one other than `[N, *S]`
    is a contract violation.
    """
    limits = contract_limits(contract).observation
    if _structure_matches(contract, observation):
        if observation.shape[0] == 0 or limits is None:
            return
        values = observation if observation.is_floating_point() else observation.double()
        values = values.reshape(observation.shape[0], -1)
        minimum, maximum = torch.stack((values.amin(0), values.amax(0))).cpu().double().numpy()
        if bool(((minimum >= limits[0]) & (maximum <= limits[1])).all()):
            return
    _reject(
        _unmapped_dtype(contract, observation, field, step)
        or report.observation_violations(contract, to_numpy(observation), field=field, step=step)
    )
