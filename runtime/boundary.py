"""The trust boundary in torch: checked transition records and the contract on whole batches.

`Transition` is the one record of a batched environment step; its constructor checks that the
fields agree with each other (shapes, dtypes, device). `Contract` is `spec.contract.Contract`
with constructors from Gymnasium spaces and environments. `check_transition` checks a whole
batch against a contract with a handful of reductions and one host synchronisation; only when
that fast check fails does it compute the detailed report, by running the reference predicate
`spec.contract.violations` on a host copy, and raise `ContractViolation` with its FIRST
violation (in the reference's order: shapes and dtypes, then environment by environment).
"""

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, NamedTuple, Self

import gymnasium
import numpy as np
import torch
from jaxtyping import Bool, Float, Int64, Shaped
from torch import Tensor

from runtime.envs.base import BatchedEnv
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

_FLOAT64_MAX = float(np.finfo(np.float64).max)

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
        return spec_contract.Transition(*(_to_numpy(getattr(self, name)) for name in FIELDS))


def _to_numpy(tensor: Tensor) -> np.ndarray:
    """`tensor` as a NumPy array: a view of a CPU tensor, a host copy of any other.

    bfloat16, which NumPy lacks, becomes float32.
    """
    if tensor.requires_grad:
        tensor = tensor.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


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
    return None if tensor is None else _to_numpy(tensor).astype(np.float64)


@dataclass(frozen=True, eq=False)
class _Limits:
    """A contract's value rules as closed float64 intervals, for the fast check.

    With a finiteness rule, infinite bounds become +-float64 max, so that infinities fail them;
    NaN fails every comparison. A part without any rule is None and not compared (a NaN there
    is valid).
    """

    size: int  # entries of one observation
    observation: tuple[np.ndarray, np.ndarray] | None  # per-entry (low, high), flattened
    reward: tuple[float, float] | None


@functools.lru_cache(maxsize=64)
def _limits(contract: spec_contract.Contract) -> _Limits:
    """The float64 intervals of `contract`, cached per contract."""
    size = int(np.prod(contract.observation_shape))
    observation = None
    low, high = contract.observation_low, contract.observation_high
    if contract.finite_observations or low is not None or high is not None:
        finite = _FLOAT64_MAX if contract.finite_observations else np.inf
        low = np.full(size, -np.inf) if low is None else low.reshape(size)
        high = np.full(size, np.inf) if high is None else high.reshape(size)
        observation = (np.maximum(low, -finite), np.minimum(high, finite))
    reward = None
    if contract.finite_rewards or contract.reward_range is not None:
        finite = _FLOAT64_MAX if contract.finite_rewards else np.inf
        reward_low, reward_high = contract.reward_range or (-np.inf, np.inf)
        reward = (max(reward_low, -finite), min(reward_high, finite))
    return _Limits(size, observation, reward)


class _Extremes(NamedTuple):
    """What the fast check needs of a batch, on the host.

    Attributes:
        observation: per-entry (minimum, maximum) over both observation fields, flattened
            (NaN where any value is NaN), or None when observations are unconstrained.
        reward: (minimum, maximum) of the rewards, or None when they are unconstrained.
        action: (minimum, maximum) of the actions.
        both_flags: whether some environment has `terminated` and `truncated` both True.
    """

    observation: tuple[np.ndarray, np.ndarray] | None
    reward: tuple[float, float] | None
    action: tuple[int, int]
    both_flags: bool


def _structure_matches(contract: spec_contract.Contract, observation: Tensor) -> bool:
    """Whether observations `[N, *S]` have the contract's shape `S` and dtype."""
    return (
        observation.ndim >= 1
        and tuple(observation.shape[1:]) == contract.observation_shape
        and _TORCH_TO_NUMPY.get(observation.dtype) == contract.observation_dtype
    )


def _values_valid(contract: spec_contract.Contract, transition: Transition) -> bool:
    """The fast check of every value rule: the batch's extremes against the limits.

    A valid batch is one whose extremes lie within the contract's limits, so a few reductions
    decide, compared exactly in float64 on the host (every float16/32 value is a float64 value).
    """
    if transition.num_envs == 0:
        return True
    limits = _limits(contract)
    if transition.device.type == "cpu":
        extremes = _host_extremes(contract, limits, transition)
    else:
        extremes = _device_extremes(contract, limits, transition)
    if extremes.both_flags:
        return False
    if not (extremes.action[0] >= 0 and extremes.action[1] < contract.n_actions):
        return False
    if extremes.reward is not None:
        assert limits.reward is not None
        (low, high), (minimum, maximum) = limits.reward, extremes.reward
        if not (low <= minimum and maximum <= high):
            return False
    if extremes.observation is not None:
        assert limits.observation is not None
        (low, high), (minimum, maximum) = limits.observation, extremes.observation
        return bool(((minimum >= low) & (maximum <= high)).all())
    return True


def _host_extremes(
    contract: spec_contract.Contract, limits: _Limits, transition: Transition
) -> _Extremes:
    """`_Extremes` of a CPU batch, by NumPy reductions on views of the tensors (faster than
    `torch.aminmax` for every field, measured at N = 16384 with torch 2.13)."""
    observation = None
    if limits.observation is not None:
        first, second = (
            _to_numpy(o).reshape(len(o), limits.size)
            for o in (transition.observation, transition.next_observation)
        )
        observation = (
            np.minimum(first.min(0), second.min(0)),
            np.maximum(first.max(0), second.max(0)),
        )
    reward = None
    if limits.reward is not None:
        rewards = _to_numpy(transition.reward)
        reward = (float(rewards.min()), float(rewards.max()))
    actions = _to_numpy(transition.action)
    action = (int(actions.min()), int(actions.max()))
    both_flags = contract.exclusive_flags and bool(
        (_to_numpy(transition.terminated) & _to_numpy(transition.truncated)).any()
    )
    return _Extremes(observation, reward, action, both_flags)


_EXACT_INTEGER = 2**53
"""Integers up to this magnitude are exact in float64."""


def _device_extremes(
    contract: spec_contract.Contract, limits: _Limits, transition: Transition
) -> _Extremes:
    """`_Extremes` of a batch on an accelerator: reductions there, one float64 transfer.

    Action extremes are clamped to +-2**53 before the transfer, which keeps them exact or out
    of any action range.
    """
    parts = []
    if limits.observation is not None:
        first, second = (
            (o if o.is_floating_point() else o.double()).reshape(len(o), limits.size)
            for o in (transition.observation, transition.next_observation)
        )
        parts += [
            torch.minimum(first.amin(0), second.amin(0)),
            torch.maximum(first.amax(0), second.amax(0)),
        ]
    if limits.reward is not None:
        parts += [value.reshape(1) for value in torch.aminmax(transition.reward)]
    parts += [
        value.clamp(-_EXACT_INTEGER, _EXACT_INTEGER).reshape(1)
        for value in torch.aminmax(transition.action)
    ]
    parts.append((transition.terminated & transition.truncated).any().reshape(1))
    host = torch.cat([part.double() for part in parts]).cpu().numpy()
    sizes = np.cumsum([part.numel() for part in parts])[:-1]
    chunks = np.split(host, sizes)
    observation = (chunks[0], chunks[1]) if limits.observation is not None else None
    reward = None
    if limits.reward is not None:
        reward = (float(chunks[-5][0]), float(chunks[-4][0]))
    action = (int(chunks[-3][0]), int(chunks[-2][0]))
    both_flags = contract.exclusive_flags and bool(chunks[-1][0])
    return _Extremes(observation, reward, action, both_flags)


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
    if _structure_matches(contract, transition.observation) and _values_valid(
        contract, transition
    ):
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
    limits = _limits(contract).observation
    if _structure_matches(contract, observation):
        if observation.shape[0] == 0 or limits is None:
            return
        values = observation if observation.is_floating_point() else observation.double()
        values = values.reshape(observation.shape[0], -1)
        minimum, maximum = (
            torch.stack((values.amin(0), values.amax(0))).cpu().double().numpy()
        )
        if bool(((minimum >= limits[0]) & (maximum <= limits[1])).all()):
            return
    _reject(
        _unmapped_dtype(contract, observation, field, step)
        or spec_contract.observation_violations(
            contract, _to_numpy(observation), field=field, step=step
        )
    )
