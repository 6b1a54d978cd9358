"""The trust boundary in torch: transition records and the contract checked on whole batches.

- `records`: `Transition` (one batched step, its fields checked against each other) and
  `ContractViolation`;
- `extremes`: the fast check, a batch's extremes against a contract's float64 limits;
- `rules`: `Contract` and the public checks, which fall back to the reference predicate
  `spec.contract.violations` only to explain a rejected batch.

Imports run one way: `records` <- `extremes` <- `rules`.
"""

from checked_rl.runtime.contract.records import (
    ContractViolation,
    Transition,
    numpy_dtype,
    to_numpy,
)
from checked_rl.runtime.contract.rules import Contract, check_observation, check_transition

__all__ = [
    "Contract",
    "ContractViolation",
    "Transition",
    "check_observation",
    "check_transition",
    "numpy_dtype",
    "to_numpy",
]
