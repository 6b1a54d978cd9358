"""The records of the trust boundary in torch: `Transition`, `ContractViolation`, dtype maps.

`Transition` is the one record of a batched environment step; its constructor checks that the
fields agree with each other (shapes, dtypes, device). Whether the values obey a contract is
decided in `checked_rl.runtime.contract.rules`.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Bool, Float, Int64, Shaped
from torch import Tensor

from checked_rl.spec import contract as spec_contract
from checked_rl.spec.contract import FIELDS, Violation

__all__ = [
    "TORCH_TO_NUMPY",
    "ContractViolation",
    "Transition",
    "numpy_dtype",
    "to_numpy",
    "torch_dtype",
]

TORCH_TO_NUMPY = {
    torch.bool: np.dtype(np.bool_),
    torch.uint8: np.dtype(np.uint8),
    torch.uint16: np.dtype(np.uint16),
    torch.uint32: np.dtype(np.uint32),
    torch.uint64: np.dtype(np.uint64),
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.float16: np.dtype(np.float16),
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
}


def numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    """The NumPy dtype of a torch dtype (bool, signed and unsigned integers, float16/32/64)."""
    if dtype not in TORCH_TO_NUMPY:
        raise ValueError(
            f"numpy_dtype: expected one of {sorted(map(str, TORCH_TO_NUMPY))}, got {dtype}"
        )
    return TORCH_TO_NUMPY[dtype]


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a NumPy dtype (anything `np.dtype` takes), the inverse of
    `numpy_dtype`."""
    for torch_type, numpy_type in TORCH_TO_NUMPY.items():
        if numpy_type == np.dtype(dtype):
            return torch_type
    raise ValueError(f"torch_dtype: no torch dtype for {np.dtype(dtype)}")


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
    that `action` is `[N]` int64 (discrete) or `[N, *A]` of a floating dtype (continuous), and
    that `reward` (floating), `terminated` and `truncated` (bool) have shape `[N]`; it raises
    `ValueError` naming the field otherwise. Whether the values obey an
    environment's contract is `check_transition`'s job.
    """

    observation: Shaped[Tensor, " N *obs"]
    action: Int64[Tensor, " N"] | Float[Tensor, " N *act"]
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
            "action": (torch.int64, "torch.int64 (discrete) or a floating dtype (continuous)"),
            "terminated": (torch.bool, "torch.bool"),
            "truncated": (torch.bool, "torch.bool"),
        }
        for name in FIELDS:
            value = getattr(self, name)
            shape = expected.get(name, torch.Size([n]))
            continuous = name == "action" and value.is_floating_point()
            if continuous:
                shape = torch.Size([n, *value.shape[1:]])
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
            if name in required and value.dtype != required[name][0] and not continuous:
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


def to_numpy(tensor: Tensor) -> np.ndarray:
    """`tensor` as a NumPy array: a view of a CPU tensor, a host copy of any other.

    bfloat16, which NumPy lacks, becomes float32.
    """
    if tensor.requires_grad:
        tensor = tensor.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
