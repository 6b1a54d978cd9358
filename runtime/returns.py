"""Returns and advantages over batches of traces: `[T, N]` tensors, time by environments.

The batched twins of `spec.returns` (see there for the definitions and their sources): column
`n` of every result is the spec function applied to column `n` of the inputs. Float32 or
float64 (all float arguments of one call share a dtype), any device; the flags `terminated` and
`truncated` are bool tensors.

How the backward recurrences run fast. Every quantity here is a discounted scan

    y_t = x_t + g * (1 - cut_t) * y_{t+1},      y_T = 0,

with a scalar `g` (`gamma * lam` for GAE, `gamma` for returns) and a bool `cut`. A loop over
`t` costs `T` small tensor operations, and at a few microseconds each it loses to a NumPy loop
for long traces. `_discounted_scan_` splits time into `K` blocks of `B` steps (`B` about
`sqrt(T / 2)`) and runs three short loops of whole-batch operations:

1. inside every block at once (`B` steps over `[K, N]` slices), the scan with zero carry-in,
   which gives each block's first value `local_b`;
2. across blocks (`K` steps over `[N]` rows): the value entering block `b` from the future is
   `carry_b = local_{b+1} + g^B * open_{b+1} * carry_{b+1}`, where `open_b` says no step of
   block `b` is cut (the product of its `B` factors is `g^B` or exactly 0);
3. inside every block again, now starting from `carry_b`, writing the final values.

That is about `2 B + K` operations instead of `T`, with no divisions, no logarithms and no
cumulative products that could underflow: each output is built by the same multiply-adds as the
spec, only grouped differently, so float64 results agree with the spec to rounding (1e-12
relative, see `properties.returns`). The few leading steps that do not fill a block are finished
by a plain loop.

Wide batches are processed in time chunks of about `CHUNK_ELEMENTS` entries, last chunk first:
each chunk computes its TD residuals and runs the blocked scan while its rows are still in the
CPU cache, starting from the first row of the chunk after it. Narrow batches are one chunk. No
shape checks run inside the loops; the arguments are checked once, at the boundary.
"""

import math
from typing import NamedTuple

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from runtime.shapes import typechecked
from spec.returns import NORMALIZE_EPS

__all__ = [
    "CHUNK_ELEMENTS",
    "NORMALIZE_EPS",
    "Advantages",
    "Flags",
    "Rewards",
    "Values",
    "discounted_returns",
    "gae",
    "lambda_returns",
    "normalize_advantages",
    "td_residuals",
]

CHUNK_ELEMENTS = 2**17
"""Entries of one time chunk (`T` is cut into chunks of about this many `[., N]` entries)."""

Rewards = Float[Tensor, "T N"]
Values = Float[Tensor, "T N"]
Flags = Bool[Tensor, "T N"]
Advantages = Float[Tensor, "T N"]


def _check_layout(where: str, tensors: dict[str, Tensor]) -> None:
    """Raise a ValueError unless all tensors share the first one's shape and device, the float
    ones (rewards, values) its dtype, float32 or float64, and the flags are bool."""
    reference, ref = next(iter(tensors.items()))
    if ref.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{where}: {reference} must be float32 or float64, got {ref.dtype}")
    for name, tensor in tensors.items():
        if tensor.shape != ref.shape:
            raise ValueError(
                f"{where}: {name} must have the shape {tuple(ref.shape)} of {reference} "
                f"(T, N), got {tuple(tensor.shape)}"
            )
        if tensor.device != ref.device:
            raise ValueError(
                f"{where}: {name} must be on {reference}'s device {ref.device}, "
                f"got {tensor.device}"
            )
        expected = torch.bool if name in ("terminated", "truncated") else ref.dtype
        if tensor.dtype != expected:
            raise ValueError(f"{where}: {name} must have dtype {expected}, got {tensor.dtype}")


def _check_discount(where: str, name: str, value: float) -> float:
    """`value` as a float, checked to lie in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{where}: {name} must lie in [0, 1], got {value!r}")
    return float(value)


def _block_size(n_steps: int) -> int:
    """The block length `B` minimising the `2 B + T / B` operations of `_discounted_scan_`."""
    return max(1, round(math.sqrt(n_steps / 2)))


def _chunk_steps(n_envs: int) -> int:
    """How many time steps of `n_envs` columns make one cache-sized chunk."""
    return max(1, CHUNK_ELEMENTS // max(1, n_envs))


def _bytes(flags: Tensor) -> Tensor:
    """A bool tensor's storage seen as uint8 (0 or 1), for fast bitwise and conversion ops."""
    return flags.view(torch.uint8)


class _Scratch(NamedTuple):
    """Buffers reused by every chunk of one call, so that no chunk allocates memory."""

    cut: Tensor  # bool [C, N]
    keep_bytes: Tensor  # uint8 [C, N], 1 - cut
    keep: Tensor  # float [C, N], 1 - cut
    rows: Tensor  # float [3, C, N]: per-block values, pass-through factors and carries


def _scratch(like: Tensor, chunk: int) -> _Scratch:
    """Scratch buffers for chunks of up to `chunk` steps of `like`'s columns, dtype and device."""
    n_envs = like.shape[1]
    return _Scratch(
        cut=torch.empty((chunk, n_envs), dtype=torch.bool, device=like.device),
        keep_bytes=torch.empty((chunk, n_envs), dtype=torch.uint8, device=like.device),
        keep=torch.empty((chunk, n_envs), dtype=like.dtype, device=like.device),
        rows=torch.empty((3, chunk, n_envs), dtype=like.dtype, device=like.device),
    )


def _discounted_scan_(
    x: Tensor, cut: Tensor, g: float, after: Tensor | None, scratch: _Scratch
) -> None:
    """`y_t = x_t + g * (1 - cut_t) * y_{t+1}` over dim 0 of `[C, N]`, overwriting `x` with `y`.

    `after` is `y_C`, the row `[N]` that follows the chunk (None: zeros). Blocked as described
    in the module docstring; `x` float, `cut` bool; `scratch` has room for `C` steps.
    """
    n_steps, n_envs = x.shape
    # keep[t] = 1 - cut[t] as floats; the factor g enters every multiply-add as `value=g`.
    # (Through uint8 views of the flags: converting bytes to floats is much faster than bools.)
    keep_bytes = torch.bitwise_xor(_bytes(cut), 1, out=scratch.keep_bytes[:n_steps])
    keep = scratch.keep[:n_steps].copy_(keep_bytes)
    block = _block_size(n_steps)
    n_blocks = n_steps // block
    lead = n_steps - n_blocks * block
    if block >= 2 and n_blocks >= 2:
        xs = x[lead:].view(n_blocks, block, n_envs).unbind(1)
        ks = keep[lead:].view(n_blocks, block, n_envs).unbind(1)
        local, through, carry = scratch.rows[:, :n_blocks]
        # 1. every block at once, zero carry-in: `local` ends as each block's first value.
        local.copy_(xs[block - 1])
        for j in range(block - 2, -1, -1):
            torch.addcmul(xs[j], ks[j], local, value=g, out=local)
        # 2. across blocks: carry[b] is the value entering block b from block b + 1. A block
        # passes a carry through iff none of its steps is cut (max over a uint8 view of `cut`).
        block_cut = _bytes(cut[lead:]).view(n_blocks, block, n_envs).amax(dim=1)
        through.fill_(g**block).masked_fill_(block_cut.bool(), 0.0)
        carry_rows, local_rows, through_rows = carry.unbind(0), local.unbind(0), through.unbind(0)
        if after is None:
            carry_rows[-1].zero_()
        else:
            carry_rows[-1].copy_(after)
        for b in range(n_blocks - 2, -1, -1):
            torch.addcmul(
                local_rows[b + 1], through_rows[b + 1], carry_rows[b + 1], out=carry_rows[b]
            )
        # 3. every block again, from its carry-in, overwriting x with the final values.
        for j in range(block - 1, -1, -1):
            torch.addcmul(xs[j], ks[j], carry, value=g, out=xs[j])
            carry = xs[j]
        after, n_steps = x[lead], lead
    for t in range(n_steps - 1, -1, -1):
        if after is not None:
            torch.addcmul(x[t], keep[t], after, value=g, out=x[t])
        after = x[t]


def _td_residuals_(
    out: Tensor,
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    gamma: float,
) -> Tensor:
    """Write `r + gamma * (1 - terminated) * V(next) - V` into `out` (three passes)."""
    torch.add(rewards, next_values, alpha=gamma, out=out)
    torch.where(terminated, rewards, out, out=out)
    return out.sub_(values)


@typechecked
def td_residuals(
    *,
    rewards: Rewards,
    values: Values,
    next_values: Values,
    terminated: Flags,
    gamma: float,
) -> Advantages:
    """The one-step TD residuals `r_t + gamma * (1 - terminated_t) * V(next_t) - V(obs_t)`.

    Batched twin of `spec.returns.td_residuals` (Schulman et al. 2015, above eq. 10).
    """
    tensors = dict(rewards=rewards, values=values, next_values=next_values, terminated=terminated)
    _check_layout("td_residuals", tensors)
    gamma = _check_discount("td_residuals", "gamma", gamma)
    out = torch.empty_like(rewards)
    return _td_residuals_(out, rewards, values, next_values, terminated, gamma)


@typechecked
def gae(
    *,
    rewards: Rewards,
    values: Values,
    next_values: Values,
    terminated: Flags,
    truncated: Flags,
    gamma: float,
    lam: float,
) -> Advantages:
    """Generalized advantage estimates, `A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}`.

    Batched twin of `spec.returns.gae` (Schulman et al. 2015, eq. 16): the sum stops where
    `terminated | truncated`, a truncated step bootstraps from `next_values` and a terminated
    one does not. Computed by the blocked scan described in the module docstring.
    """
    tensors = dict(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        truncated=truncated,
    )
    _check_layout("gae", tensors)
    gamma = _check_discount("gae", "gamma", gamma)
    lam = _check_discount("gae", "lam", lam)
    advantages = torch.empty_like(rewards)
    n_steps, n_envs = rewards.shape
    chunk = max(1, min(n_steps, _chunk_steps(n_envs)))
    scratch = _scratch(rewards, chunk)
    for end in range(n_steps, 0, -chunk):
        t = slice(max(0, end - chunk), end)
        x = _td_residuals_(
            advantages[t], rewards[t], values[t], next_values[t], terminated[t], gamma
        )
        cut = scratch.cut[: x.shape[0]]
        torch.bitwise_or(_bytes(terminated[t]), _bytes(truncated[t]), out=_bytes(cut))
        after = advantages[end] if end < n_steps else None
        _discounted_scan_(x, cut, gamma * lam, after, scratch)
    return advantages


@typechecked
def lambda_returns(
    *,
    rewards: Rewards,
    values: Values,
    next_values: Values,
    terminated: Flags,
    truncated: Flags,
    gamma: float,
    lam: float,
) -> Values:
    """The lambda-returns `A_t + V(obs_t)`: the value targets of PPO.

    Batched twin of `spec.returns.lambda_returns` (Schulman et al. 2015, section 4).
    """
    advantages = gae(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        truncated=truncated,
        gamma=gamma,
        lam=lam,
    )
    return advantages.add_(values)


@typechecked
def discounted_returns(
    *,
    rewards: Rewards,
    next_values: Values,
    terminated: Flags,
    truncated: Flags,
    gamma: float,
) -> Values:
    """Discounted Monte-Carlo returns, bootstrapped from `next_values` where a trace is cut.

    Batched twin of `spec.returns.discounted_returns` (see there for the exact definition):
    `G_t = r_t + gamma * G_{t+1}` while the episode continues inside the trace; at a
    termination `G_t = r_t`; at a truncation or the last step `G_t = r_t + gamma * V(next_t)`.
    """
    tensors = dict(
        rewards=rewards, next_values=next_values, terminated=terminated, truncated=truncated
    )
    _check_layout("discounted_returns", tensors)
    gamma = _check_discount("discounted_returns", "gamma", gamma)
    returns = torch.empty_like(rewards)
    n_steps, n_envs = rewards.shape
    chunk = max(1, min(n_steps, _chunk_steps(n_envs)))
    scratch = _scratch(rewards, chunk)
    for end in range(n_steps, 0, -chunk):
        t = slice(max(0, end - chunk), end)
        # The trace stops after a done step and after the last step; there the bootstrap
        # gamma * V(next) enters x_t = r_t + gamma * bootstrap_t, unless the step terminated.
        stops = scratch.cut[: end - t.start]
        torch.bitwise_or(_bytes(terminated[t]), _bytes(truncated[t]), out=_bytes(stops))
        if end == n_steps:
            stops[-1] = True
        x = returns[t].copy_(next_values[t]).masked_fill_(terminated[t] | ~stops, 0.0)
        x.mul_(gamma).add_(rewards[t])
        after = returns[end] if end < n_steps else None
        _discounted_scan_(x, stops, gamma, after, scratch)
    return returns


@typechecked
def normalize_advantages(
    advantages: Float[Tensor, "*batch"], *, eps: float = NORMALIZE_EPS
) -> Float[Tensor, "*batch"]:
    """The z-score `(A - mean(A)) / (std(A) + eps)` over every entry of the batch.

    Batched twin of `spec.returns.normalize_advantages`: population standard deviation
    (`correction = 0`), `eps = NORMALIZE_EPS = 1e-8` by default (Stable-Baselines3's PPO).
    """
    if advantages.numel() == 0:
        raise ValueError("normalize_advantages: advantages must have at least one entry, got 0")
    std, mean = torch.std_mean(advantages, correction=0)
    return (advantages - mean) / (std + eps)
