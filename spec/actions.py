"""Continuous actions at the trust boundary: which are refused, and what the environment gets.

A session with a `Box` action space (`spec.contract.Contract.action_box`) takes one action
`[*A]` per environment, a batch `[N, *A]`, and on every step

1. refuses the batch unless it has shape `(N, *A)`, the box's dtype and only finite entries
   (`action_violations`, the action rules of `spec.contract.violations` on their own);
2. steps environment `i` with `environment_action(box, action[i])`, the action clipped
   entrywise into `[low, high]` in its own dtype (`Box.clip`);
3. records `action[i]` as given, unclipped, in the transition, so that a learner evaluates the
   log-probability of the action its policy sampled.

Example: Pendulum-v1's box is `[-2, 2]` (float32, shape `(1,)`). The action `[2.7]` is valid;
the environment receives `[2.0]` and the transition records `[2.7]`.

>>> box = Box((1,), -2.0, 2.0)
>>> action = np.array([2.7], np.float32)
>>> environment_action(box, action).tolist(), action.tolist() == [np.float32(2.7)]
([2.0], True)
"""

from typing import Any

import numpy as np

from checked_rl.spec.contract import Contract, Violation
from checked_rl.spec.envs.base import Box

__all__ = ["action_violations", "environment_action"]


def environment_action(box: Box, action: np.ndarray) -> np.ndarray:
    """What an environment receives for the well-formed `action`: `box.clip(action)`."""
    return box.clip(action)


def _shape_text(shape: tuple[int, ...]) -> str:
    """`(N, *shape)` as text, `N` for the batch size: `(N, 1)`."""
    return "(" + ", ".join(["N", *map(str, shape)]) + ")"


def action_violations(
    contract: Contract, actions: Any, *, step: int | None = None
) -> list[Violation]:
    """Every violation of `contract`'s action rules by a batch of continuous actions `[N, *A]`.

    The action rules of `violations` on their own, for actions before they reach an
    environment: a NumPy array of shape `(N, *A)` (any `N`) and the box's dtype, every entry
    finite. Values outside the box are valid (the environment receives them clipped). Shape is
    checked before dtype, dtype before values; entries are listed environment by environment.

    >>> contract = Contract((3,), n_actions=None, action_box=Box((1,), -2.0, 2.0))
    >>> action_violations(contract, np.array([[2.7], [-9.0]], np.float32))
    []
    >>> for v in action_violations(contract, np.array([[0.5], [np.nan]], np.float32), step=4):
    ...     print(v)
    contract violation: action[env 1, step 4] entry 0 = nan is not finite
    >>> print(action_violations(contract, np.zeros(2, np.float32))[0])
    contract violation: action has shape (2,), expected (N, 1)
    >>> print(action_violations(contract, np.zeros((2, 1)))[0])
    contract violation: action has dtype float64, expected float32
    """
    box = contract.action_box
    if box is None:
        raise ValueError("action_violations: the contract has discrete actions (no action_box)")
    if not isinstance(actions, np.ndarray):
        kind = type(actions).__name__
        return [Violation("dtype", "action", None, step, None, kind, "a NumPy array")]
    if actions.ndim != 1 + len(box.shape) or actions.shape[1:] != box.shape:
        expected = _shape_text(box.shape)
        return [Violation("shape", "action", None, step, None, actions.shape, expected)]
    if actions.dtype != box.dtype:
        return [Violation("dtype", "action", None, step, None, actions.dtype, str(box.dtype))]
    found = []
    for env in range(actions.shape[0]):
        for entry in np.ndindex(*box.shape):
            value = actions[env][entry]
            if not np.isfinite(value):
                found.append(
                    Violation("finite", "action", env, step, entry, value, "is not finite")
                )
    return found
