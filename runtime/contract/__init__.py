"""The trust boundary in torch: transition records, the contract on whole batches and host values.

- `records`: `Transition` (one batched step, its fields checked against each other) and
  `ContractViolation`;
- `extremes`: the fast check, a batch's extremes against a contract's float64 limits;
- `rules`: `Contract` and the public checks, which fall back to the reference predicate
  `spec.contract.violations` only to explain a rejected batch;
- `actions`: continuous actions: `check_box_actions` (shape, dtype, finiteness, on every
  step), `clip_actions` and `received_actions` (what the environment receives,
  `spec.actions`);
- `host`: the checks of values that Python environments hand over one at a time (observations
  of the right shape and dtype, rewards that are real numbers), before they become a batch.

Imports run one way: `records` <- `extremes` <- `rules`, `records` <- `actions` <- `rules`,
and `records` <- `host`.
"""

from checked_rl.runtime.contract.actions import check_box_actions, clip_actions, received_actions
from checked_rl.runtime.contract.host import (
    check_host_observations,
    host_result,
    observation_structure_violation,
    real_flag,
    real_reward,
)
from checked_rl.runtime.contract.records import (
    ContractViolation,
    Transition,
    numpy_dtype,
    to_numpy,
    torch_dtype,
)
from checked_rl.runtime.contract.rules import Contract, check_observation, check_transition

__all__ = [
    "Contract",
    "ContractViolation",
    "Transition",
    "check_box_actions",
    "check_host_observations",
    "check_observation",
    "check_transition",
    "clip_actions",
    "host_result",
    "numpy_dtype",
    "observation_structure_violation",
    "real_flag",
    "real_reward",
    "received_actions",
    "to_numpy",
    "torch_dtype",
]
