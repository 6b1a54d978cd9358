"""Finite MDPs in tabular form, solved exactly.

A `TabularMDP` has states `0 .. S-1` and actions `0 .. A-1`:

- `P[s, a, s']`: the probability of moving from `s` to `s'` under `a` (rows sum to one),
- `R[s, a]`: the expected reward of taking `a` in `s`,
- `terminal[s]`: True for terminal states, whose value is 0 by definition.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP: transition tensor `P[s, a, s']`, rewards `R[s, a]`, terminal mask `[s]`."""

    P: np.ndarray
    R: np.ndarray
    terminal: np.ndarray

    def __post_init__(self) -> None:
        if self.P.ndim != 3 or self.P.shape[0] != self.P.shape[2]:
            raise ValueError(f"P must have shape [S, A, S], got {self.P.shape}")
        n_states, n_actions, _ = self.P.shape
        if self.R.shape != (n_states, n_actions):
            raise ValueError(
                f"R must have shape [S, A] = {(n_states, n_actions)}, got {self.R.shape}"
            )
        if self.terminal.shape != (n_states,) or self.terminal.dtype != np.bool_:
            raise ValueError(
                f"terminal must be a bool array of shape [S] = {(n_states,)}, "
                f"got {self.terminal.dtype} {self.terminal.shape}"
            )
        if np.any(self.P < 0) or not np.allclose(self.P.sum(axis=2), 1.0):
            raise ValueError("every row P[s, a, :] must be a probability distribution")

    @property
    def n_states(self) -> int:
        """The number of states S."""
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        """The number of actions A."""
        return self.P.shape[1]
