"""The trust boundary in torch: checked transition records and the contract on whole batches.

`Transition` is the one record of a batched environment step; its constructor checks that the
fields agree with each other (shapes, dtypes, device). `Contract` is `spec.contract.Contract`
with constructors from Gymnasium spaces and environments. `check_transition` checks a whole
batch against a contract with a handful of reductions and one host synchronisation (the fast
check, in `runtime.extremes`); only when that fast check fails does it compute the detailed
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
from jaxtyping import Bool, Float, Int64, Shaped
from torch import Tensor

from runtime.envs.base import BatchedEnv
from runtime.extremes import contract_limits, to_numpy, values_valid
from runtime.shapes import typechecked
from spec import contract as spec_contract
from spec.contract import FIELDS, Violation
from spec.envs.base import Environment

__all__ = [
    "Contract",
    "ContractViolation",
    "Transition",
    "check_observation",
    "check_transition",
    "numpy_dtype",
]

_TORCH_TO_NUMPY = {
    torch.bool: np.dtype(np.bool_),
    torch.uint8: np.dtype(np.uint8),
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.float16: np.dtype(np.float16),
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
}


def numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    """The NumPy dtype of a torch dtype (bool, integers, float16/32/64)."""
    if dtype not in _TORCH_TO_NUMPY:
        raise ValueError(
            f"numpy_dtype: expected one of {sorted(map(str, _TORCH_TO_NUMPY))}, got {dtype}"
        )
    return _TORCH_TO_NUMPY[dtype]


class ContractViolation(ValueError):
    """A transition broke its contract; the message is that of the first violation.

    Attributes:
        violations: every violation found, in the reference order (the first is the message).
    """

    def __init__(self, violations: list[Violation]) -> None:
        if not violations:
            raise ValueError("ContractViolation needs at least one violation")
        self.violations = tuple(violations)
        super().__init__(self.violations[0].message)

    @property
    def violation(self) -> Violation:
        """The first violation: its `field`, `env`, `step`, `entry`, `value` and `bound`."""
        return self.violations[0]


@dataclass(frozen=True, eq=False)
class Transition:
    """One batched environment step: the record a checked session returns.

    Built only through its constructor, which checks that every field is a tensor on one
    device, that `observation` and `next_observation` have the same shape `[N, *S]` and dtype,
    and that `action` (int64), `reward` (floating), `terminated` and `truncated` (bool) have
    shape `[N]`; it raises `ValueError` naming the field otherwise. Whether the values obey an
    environment's contract is `check_transition`'s job.
    """

    observation: Shaped[Tensor, " N *obs"]
    action: Int64[Tensor, " N"]
    reward: Float[Tensor, " N"]
    next_observation: Shaped[Tensor, " N *obs"]
    terminated: Bool[Tensor, " N"]
    truncated: Bool[Tensor, " N"]

    def __post_init__(self) -> None:
        for name in FIELDS:
            value = getattr(self, name)
            if not isinstance(value, Tensor):
                raise ValueError(
                    f"Transition: {name} must be a torch.Tensor, got {type(value).__name__}"
                )
        observation = self.observation
        if observation.ndim < 1:
            raise ValueError(
                f"Transition: observation must have shape [N, *S], got {tuple(observation.shape)}"
            )
        n = observation.shape[0]
        expected = {"observation": observation.shape, "next_observation": observation.shape}
        required = {
            "next_observation": (observation.dtype, "the dtype of observation"),
            "action": (torch.int64, "torch.int64"),
            "terminated": (torch.bool, "torch.bool"),
            "truncated": (torch.bool, "torch.bool"),
        }
        for name in FIELDS:
            value = getattr(self, name)
            shape = expected.get(name, torch.Size([n]))
            if value.shape != shape:
                raise ValueError(
                    f"Transition: {name} must have shape {tuple(shape)} (N = {n} from "
                    f"observation), got {tuple(value.shape)}"
                )
            if value.device != observation.device:
                raise ValueError(
                    f"Transition: every field must be on {observation.device} (the device of "
                    f"observation), got {name} on {value.device}"
                )
            if name in required and value.dtype != required[name][0]:
                raise ValueError(
                    f"Transition: {name} must have dtype {required[name][1]}, got {value.dtype}"
                )
        if not self.reward.is_floating_point():
            raise ValueError(
                f"Transition: reward must have a floating dtype, got {self.reward.dtype}"
            )

    @property
    def num_envs(self) -> int:
        """The batch size N."""
        return self.observation.shape[0]

    @property
    def device(self) -> torch.device:
        """The device of every field."""
        return self.observation.device

    @property
    def done(self) -> Bool[Tensor, " N"]:
        """`terminated | truncated`: where an episode ended at this step."""
        return self.terminated | self.truncated

    def to(self, device: torch.device | str) -> "Transition":
        """The same record on `device`."""
        return Transition(*(getattr(self, name).to(device) for name in FIELDS))

    def numpy(self) -> spec_contract.Transition:
        """The record as the reference's `spec.contract.Transition` of host arrays.

        CPU fields are shared, not copied; bfloat16 becomes float32.
        """
        return spec_contract.Transition(*(to_numpy(getattr(self, name)) for name in FIELDS))


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
        """The contract of a `Box` observation space and a `Discrete(n)` action space.

        Observation shape, dtype and bounds come from the `Box`, `n_actions` from the
        `Discrete` space, which must start at 0. Any other space is refused.
        """
        if not isinstance(observation_space, gymnasium.spaces.Box):
            raise ValueError(
                f"Contract.from_spaces: expected a gymnasium.spaces.Box observation space, "
                f"got {observation_space!r}"
            )
        if not isinstance(action_space, gymnasium.spaces.Discrete) or int(action_space.start):
            raise ValueError(
                f"Contract.from_spaces: expected a gymnasium.spaces.Discrete(n) action space "
                f"starting at 0, got {action_space!r}"
            )
        fields = {
            "observation_shape": tuple(observation_space.shape),
            "n_actions": int(action_space.n),
            "observation_dtype": observation_space.dtype,
            "observation_low": np.asarray(observation_space.low, dtype=np.float64),
            "observation_high": np.asarray(observation_space.high, dtype=np.float64),
        }
        return cls._build(fields, overrides, "Contract.from_spaces")

    @classmethod
    def from_env(cls, env: BatchedEnv, **overrides: Any) -> Self:
        """The contract of a runtime `BatchedEnv`: its shape, actions, dtype and bounds."""
        fields = {
            "observation_shape": tuple(env.observation_shape),
            "n_actions": int(env.n_actions),
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
            "n_actions": int(env.n_actions),
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


def _optional_numpy(tensor: Tensor | None) -> np.ndarray | None:
    """A host float64 copy of a bound tensor, or None."""
    return None if tensor is None else to_numpy(tensor).astype(np.float64)


def _structure_matches(contract: spec_contract.Contract, observation: Tensor) -> bool:
    """Whether observations `[N, *S]` have the contract's shape `S` and dtype."""
    return (
        observation.ndim >= 1
        and tuple(observation.shape[1:]) == contract.observation_shape
        and _TORCH_TO_NUMPY.get(observation.dtype) == contract.observation_dtype
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
    for name, value, expected in (
        ("contract", contract, spec_contract.Contract),
        ("transition", transition, Transition),
    ):
        if not isinstance(value, expected):
            raise TypeError(
                f"check_transition: {name} must be a {expected.__module__}.{expected.__name__}, "
                f"got {type(value).__name__}"
            )
    if step is not None and not isinstance(step, int):
        raise TypeError(f"check_transition: step must be an int or None, got {step!r}")
    _check_transition(contract, transition, step=step)


def _check_transition(
    contract: spec_contract.Contract, transition: Transition, *, step: int | None = None
) -> None:
    """`check_transition` without the argument checks, for callers that built the arguments
    themselves (a session's step, whose typed boundary is `step_checked`)."""
    if _structure_matches(contract, transition.observation) and values_valid(contract, transition):
        return
    _reject(
        _unmapped_dtype(contract, transition.observation, "observation", step)
        or spec_contract.violations(contract, transition.numpy(), step=step)
    )


def _unmapped_dtype(
    contract: spec_contract.Contract, observation: Tensor, field: str, step: int | None
) -> list[Violation]:
    """A dtype violation for observations of a dtype NumPy lacks (bfloat16), else nothing.

    The host copy turns such observations into float32, so the reference cannot see it.
    """
    if observation.dtype in _TORCH_TO_NUMPY:
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
        or spec_contract.observation_violations(
            contract, to_numpy(observation), field=field, step=step
        )
    )
