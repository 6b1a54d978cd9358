"""N GridWorlds stepped together as tensors: the batched twin of `spec.envs.gridworld`.

The state of copy `i` is its cell `(row, col)` (int64) and its step count. Observations follow
`params.observation`: `"one_hot"` gives `[N, width * height]` with a 1 at `row * width + col`,
`"coordinates"` gives `[N, 2]` holding `(row, col)`, in the environment's float dtype. Copies
that reach the goal (or `params.max_episode_steps`) are put back on the start cell in the same step.
The start is fixed, so `reset(seed)` accepts a seed only for the protocol's sake, and the
cells and step counts are all of the state (`state_dict`).
"""

from collections.abc import Mapping
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from checked_rl.runtime.envs.base import (
    EnvStep,
    check_actions,
    check_state,
    checked_device,
    plain_params,
)
from checked_rl.runtime.shapes import typechecked
from checked_rl.spec.envs import gridworld as spec

Cells = Int[Tensor, "N 2"]
StepCounts = Int[Tensor, " N"]


class GridWorld:
    """`num_envs` GridWorld copies on one device; implements `runtime.envs.base.BatchedEnv`.

    Args:
        num_envs: the number of copies N.
        params: the spec layout and observation encoding.
        device: where the state lives.
        dtype: the dtype of observations and rewards (float32 or float64).
    """

    n_actions: int = spec.N_ACTIONS

    def __init__(
        self,
        num_envs: int,
        params: spec.Params | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = checked_device("GridWorld", num_envs, dtype, device)
        self.num_envs = num_envs
        self.params = spec.Params() if params is None else params
        self.dtype = dtype
        self.observation_shape: tuple[int, ...] = self.params.observation_shape
        low, high = spec.observation_bounds(self.params)
        self.observation_low: Tensor | None = torch.as_tensor(low, dtype=dtype, device=self.device)
        self.observation_high: Tensor | None = torch.as_tensor(
            high, dtype=dtype, device=self.device
        )
        self._moves = torch.tensor(spec.MOVES, dtype=torch.int64, device=self.device)
        self._start = torch.tensor(self.params.start, dtype=torch.int64, device=self.device)
        self._goal = torch.tensor(self.params.goal, dtype=torch.int64, device=self.device)
        self._upper = torch.tensor(
            (self.params.height - 1, self.params.width - 1), dtype=torch.int64, device=self.device
        )
        self.reset()

    @typechecked
    def reset(self, seed: int | None = None) -> Float[Tensor, " N *obs"]:
        """Put every copy on the start cell; `seed` is accepted and unused (no randomness)."""
        del seed
        self._cells = self._start.expand(self.num_envs, 2).clone()
        self._steps = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        return self.observe()

    @typechecked
    def observe(self) -> Float[Tensor, " N *obs"]:
        """The current observations (the start observation where a copy just ended)."""
        return self._observation(self._cells)

    def step(self, actions: Tensor) -> EnvStep:
        """Move copy `i` by `actions[i]` (0 up, 1 down, 2 left, 3 right); auto-reset at done.

        `actions` must be an int64 tensor of shape `[N]` on the environment's device, with values
        in `0..3` (shape, dtype and device are checked; values are used as indices, so an
        out-of-range action raises an indexing error).
        """
        check_actions("GridWorld.step", actions, self.num_envs, self.device)
        cells = torch.minimum(torch.clamp(self._cells + self._moves[actions], min=0), self._upper)
        terminated = (cells == self._goal).all(dim=1)
        steps = self._steps + 1
        if self.params.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = steps >= self.params.max_episode_steps
        done = terminated | truncated
        reward = torch.where(terminated, spec.GOAL_REWARD, spec.STEP_REWARD).to(self.dtype)
        self._cells = torch.where(done.unsqueeze(1), self._start, cells)
        self._steps = steps.masked_fill_(done, 0)
        return EnvStep(self._observation(cells), reward, terminated, truncated)

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs as plain data: the `cells` and `steps` of
        `get_state`, and what `load_state_dict` requires to match (copies, dtype, params)."""
        cells, steps = self.get_state()
        return {**self._identity(), "cells": cells, "steps": steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly from `state` (from `state_dict`); a one-line ValueError names what
        does not fit: a missing entry, the number of copies, dtype, params, a cell off the grid."""
        check_state("GridWorld.load_state_dict", state, self._identity(), ("cells", "steps"))
        self.set_state(state["cells"].to(self.device), state["steps"].to(self.device))

    @typechecked
    def get_state(self) -> tuple[Cells, StepCounts]:
        """Copies of the cells `[N, 2]` as (row, col) and the step counts `[N]`."""
        return self._cells.clone(), self._steps.clone()

    @typechecked
    def set_state(self, cells: Cells, steps: StepCounts) -> None:
        """Overwrite every copy's cell `[N, 2]` and step count `[N]` (for properties)."""
        if cells.shape[0] != self.num_envs:
            raise ValueError(
                f"GridWorld.set_state: expected cells for {self.num_envs} copies, "
                f"got shape {tuple(cells.shape)}"
            )
        inside = (cells >= 0) & (cells <= self._upper.to(cells.device))
        if not bool(inside.all()):
            raise ValueError(
                f"GridWorld.set_state: every cell must lie in the {self.params.height} x "
                f"{self.params.width} grid, got {cells.tolist()}"
            )
        self._cells = cells.to(self.device, torch.int64, copy=True)
        self._steps = steps.to(self.device, torch.int64, copy=True)

    def _identity(self) -> dict[str, Any]:
        """What a state must share with this environment to be loaded into it."""
        params = plain_params(self.params)
        return {"num_envs": self.num_envs, "dtype": str(self.dtype), "params": params}

    def _observation(self, cells: Tensor) -> Tensor:
        """`[N, *obs]`: the encoding of `cells` chosen by `params.observation`."""
        if self.params.observation == "coordinates":
            return cells.to(self.dtype)
        states = cells[:, 0] * self.params.width + cells[:, 1]
        one_hot = torch.zeros(
            self.num_envs, self.params.n_states, dtype=self.dtype, device=self.device
        )
        return one_hot.scatter_(1, states.unsqueeze(1), 1.0)
