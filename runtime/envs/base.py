"""What every batched runtime environment provides.

A batched environment steps `num_envs` copies together as tensors on one device. It resets the
copies that finish in the same step (same-step auto-reset): `step` returns the true successor
observations, also for the copies that just ended, and `observe()` afterwards returns the reset
observations there. No step is wasted and no transition mixes two episodes.

Its `state_dict()` holds everything an exact resume needs (physical state, step counts, the
state of its random generators) as plain data: tensors, numbers, strings, lists and dicts, as
`torch.load(weights_only=True)` requires. `load_state_dict(state)` continues from it exactly.
"""

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor


class EnvStep(NamedTuple):
    """The outcome of one batched step.

    Attributes:
        next_observation: `[N, *obs]`, the true successors (before any reset).
        reward: `[N]`, floating.
        terminated: `[N]` bool, the MDP reached a terminal state.
        truncated: `[N]` bool, the episode was cut by a limit.
    """

    next_observation: Tensor
    reward: Tensor
    terminated: Tensor
    truncated: Tensor


class BatchedEnv(Protocol):
    """The interface sessions and properties rely on."""

    num_envs: int
    device: torch.device
    dtype: torch.dtype
    observation_shape: tuple[int, ...]
    n_actions: int
    observation_low: Tensor | None
    observation_high: Tensor | None

    def reset(self, seed: int | None = None) -> Tensor:
        """Reset every copy (reseeding first when `seed` is given); return `[N, *obs]`."""
        ...

    def observe(self) -> Tensor:
        """The current observations `[N, *obs]` (reset observations after a done)."""
        ...

    def step(self, actions: Tensor) -> EnvStep:
        """Apply `actions` (`[N]` int64), auto-reset the copies that are done."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as plain data (copies, not views)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue exactly from `state`; a one-line ValueError names what does not fit."""
        ...


def checked_device(
    owner: str, num_envs: int, dtype: torch.dtype, device: str | torch.device
) -> torch.device:
    """Check a batched environment's constructor arguments; return its device.

    Raises a ValueError naming `owner` unless `num_envs` is at least 1 and `dtype` is float32
    or float64. The device comes back as tensors on it report theirs: "cuda" becomes "cuda:0".
    """
    if num_envs < 1:
        raise ValueError(f"{owner}: num_envs must be at least 1, got {num_envs}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{owner}: dtype must be torch.float32 or torch.float64, got {dtype}")
    return torch.empty(0, device=device).device


def check_actions(owner: str, actions: Tensor, num_envs: int, device: torch.device) -> None:
    """Raise a ValueError naming `owner` unless `actions` is `[num_envs]` int64 on `device`.

    Cheap enough for every step: it compares shape, dtype and device, not values.
    """
    if actions.shape != (num_envs,) or actions.dtype != torch.int64 or actions.device != device:
        raise ValueError(
            f"{owner}: expected actions of shape ({num_envs},), dtype torch.int64 on {device}, "
            f"got shape {tuple(actions.shape)}, dtype {actions.dtype} on {actions.device}"
        )


def numpy_generator(state: Mapping[str, Any]) -> np.random.Generator:
    """A NumPy generator (PCG64, like `np.random.default_rng`) continuing from `state`, a
    `bit_generator.state` dict; a ValueError if `state` is not a PCG64 state."""
    rng = np.random.default_rng()
    rng.bit_generator.state = dict(state)
    return rng


def plain_params(params: Any) -> Any:
    """`params` as plain data for a state: a dataclass as a dict (tuples as lists), else repr."""
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        return repr(params)
    fields = dataclasses.asdict(params).items()
    return {name: list(value) if isinstance(value, tuple) else value for name, value in fields}


def check_state(
    owner: str,
    state: Any,
    matches: Mapping[str, Any],
    per_copy: Iterable[str] = (),
    other: Iterable[str] = (),
) -> None:
    """Raise a one-line ValueError naming `owner` and what differs unless `state` fits.

    `state` must be a dict holding every key of `matches` with an equal value (the number of
    copies `num_envs`, the dtype, the params: what a state of another environment gets wrong;
    of dicts, only the entries that differ are named), every key of `per_copy` with one entry
    per copy (`len` equal to `matches["num_envs"]`), and every key of `other`.
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"{owner}: expected a dict from state_dict(), got {type(state).__name__}")
    per_copy = tuple(per_copy)
    for keys in (tuple(matches), (*per_copy, *other)):
        missing = [key for key in keys if key not in state]
        if missing:
            has = sorted(state)
            raise ValueError(f"{owner}: the state lacks the entries {missing}; it has {has}")
        for key in keys:
            if key in matches and state[key] != matches[key]:
                found, expected = _differences(state[key], matches[key])
                raise ValueError(
                    f"{owner}: the state was captured with {key}={found!r}, "
                    f"this one has {key}={expected!r}"
                )
    for key in per_copy:
        if len(state[key]) != matches["num_envs"]:
            raise ValueError(
                f"{owner}: the state's {key} has {len(state[key])} entries, expected one for "
                f"each of the {matches['num_envs']} copies"
            )


def _differences(found: Any, expected: Any) -> tuple[Any, Any]:
    """The entries in which two dicts differ (or the two values themselves, if not dicts)."""
    if not (isinstance(found, Mapping) and isinstance(expected, Mapping)):
        return found, expected
    names = [name for name in {**expected, **found} if found.get(name) != expected.get(name)]
    return {n: found.get(n) for n in names}, {n: expected.get(n) for n in names}
