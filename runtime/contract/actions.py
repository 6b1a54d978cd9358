"""Continuous actions in torch: the per-step check and the clipping of `spec.actions`.

`check_box_actions` refuses a batch of actions `[N, *A]` of the wrong shape or dtype, or with a
non-finite entry, with one reduction and one host synchronisation; only a refused batch goes to
the reference `spec.actions.action_violations` for the report, whose first violation is the
message of the `ContractViolation`. `clip_actions` is `spec.envs.base.Box.clip` on a batch:
entrywise into `[low, high]`, the bounds rounded to the actions' dtype.
"""

import functools

import numpy as np
import torch
from torch import Tensor

from checked_rl.runtime.contract.records import TORCH_TO_NUMPY, ContractViolation, to_numpy
from checked_rl.spec import contract as spec_contract
from checked_rl.spec.actions import action_violations
from checked_rl.spec.contract import Violation
from checked_rl.spec.envs.base import Box

__all__ = [
    "action_structure_matches",
    "check_box_actions",
    "clip_actions",
    "received_actions",
]


def check_box_actions(
    contract: spec_contract.Contract, actions: Tensor, *, step: int | None = None
) -> None:
    """Raise `ContractViolation` unless `actions` obeys the action rules of `contract`.

    Agrees with `spec.actions.action_violations` on the host copy: it raises exactly when that
    list is non-empty, with the list's first violation as the message.

    Args:
        contract: a contract with an `action_box` (continuous actions).
        actions: one action per environment, `[N, *A]`.
        step: the step index, for the message.
    """
    box = contract.action_box
    if box is None:
        raise ValueError("check_box_actions: the contract has discrete actions (no action_box)")
    if (
        tuple(actions.shape[1:]) == box.shape
        and actions.ndim == 1 + len(box.shape)
        and TORCH_TO_NUMPY.get(actions.dtype) == box.dtype
        and bool(torch.isfinite(actions).all())
    ):
        return
    if actions.dtype not in TORCH_TO_NUMPY and actions.ndim == 1 + len(box.shape):
        dtype = str(actions.dtype).removeprefix("torch.")
        found = [Violation("dtype", "action", None, step, None, dtype, str(box.dtype))]
    else:
        found = action_violations(contract, to_numpy(actions), step=step)
    if not found:
        raise AssertionError(
            "check_box_actions: the fast check refused actions in which the reference "
            "spec.actions.action_violations finds no violation; please report this"
        )
    raise ContractViolation(found)


def received_actions(
    contract: spec_contract.Contract, actions: Tensor, step: int | None = None
) -> Tensor:
    """What the environments receive for `actions` `[N, *A]`: `check_box_actions`, then
    `clip_actions` into the contract's box (`spec.actions.environment_action` per row)."""
    check_box_actions(contract, actions, step=step)
    assert contract.action_box is not None
    return clip_actions(contract.action_box, actions)


def clip_actions(box: Box, actions: Tensor) -> Tensor:
    """`actions` `[N, *A]` clipped entrywise into `box`, in their dtype: `Box.clip` of every
    row, value for value (a zero may keep another sign: NumPy's own float16 and float32 paths
    disagree on that)."""
    low, high = _bounds(box, actions.dtype, actions.device)
    return torch.minimum(torch.maximum(actions, low), high)


@functools.lru_cache(maxsize=64)
def _bounds(box: Box, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """The box's bounds as tensors of `dtype` on `device`, rounded as `Box.clip` rounds them."""
    numpy = TORCH_TO_NUMPY[dtype]
    return tuple(
        torch.from_numpy(np.asarray(bound.astype(numpy))).to(device)
        for bound in (box.low, box.high)
    )


def action_structure_matches(contract: spec_contract.Contract, action: Tensor) -> bool:
    """Whether a transition's `action` has the contract's structure: `[N]` int64 for discrete
    actions (which `Transition` guarantees), `[N, *A]` of the box's dtype for continuous ones."""
    box = contract.action_box
    if box is None:
        return action.dtype == torch.int64
    return (
        action.ndim == 1 + len(box.shape)
        and tuple(action.shape[1:]) == box.shape
        and TORCH_TO_NUMPY.get(action.dtype) == box.dtype
    )
