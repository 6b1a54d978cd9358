"""Returns and advantages over batches of traces: `[T, N]` tensors, time by environments.

The batched twins of `spec.returns` (see there for the definitions and their sources): column
`n` of every result is the spec function applied to column `n` of the inputs. Float32 or
float64 (all float arguments of one call share a dtype), any device; the flags `terminated` and
`truncated` are bool tensors.

How the backward recurrences run fast. Every quantity here is a discounted scan

    y_t = x_t + g * (1 - cut_t) * y_{t+1},      y_T = 0,

with a scalar `g` (`gamma * lam` for GAE, `gamma` for returns) and a bool `cut`. A loop over
`t` costs `T` tensor operations of `N` entries, about 1 to 3 microseconds each. That is the
cheapest way for wide batches (`N >= ROW_SCAN_MIN_ENVS`), where the work per row dominates:
`_row_scan_` runs one fused multiply-add per step, `torch.addcmul(x[t], keep[t], y[t + 1])`.
For narrow batches the fixed cost per operation dominates, and `_discounted_scan_` splits time
into `K` blocks of `B` steps (`B` about `sqrt(T / 2)`) and runs three short loops of whole-batch
operations:

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
by the row loop.

Time is processed in chunks, last chunk first: each chunk computes its TD residuals and keep
factors and runs the scan while its rows are still in the CPU cache, starting from the first row
of the chunk after it. A blocked scan's chunk has about `CHUNK_ELEMENTS` entries; a row scan's is
one piece. No operation here touches more than `PIECE_ELEMENTS` entries (torch's grain size for
intra-op parallelism; the passes over a chunk run piece by piece, and a blocked scan's `[K, N]`
slices stay under it), except single rows of more environments than that, so none is split
across threads, whatever `torch.get_num_threads()` says: these scans are bound by memory and by
the cost of launching operations, and where another process keeps a core busy every threaded
operation waits for it, which made the scans 10 to 50 times slower with 2 threads on a 2-core
machine (`benchmarks/gae.py --threads 2`).

Three more details matter on the CPU (measured at `[T, N] = [1024, 4096]`, float32). The TD
residuals zero a terminated step's next value with a bitwise and on its integer view: exact, it
ignores NaN and infinities as `torch.where` does, and is cheaper (`torch.where` is slow on the
CPU: 23 microseconds per `PIECE_ELEMENTS` entries, against 16 for the three integer passes). The
factors `1 - cut` are made from uint8 views of the flags (converting bytes to floats is much
faster than converting bools). Results are allocated by NumPy, which asks the kernel for huge
pages on large arrays: depending on the state of the C allocator, a fresh 16 MB torch tensor can
take 4096 page faults on first write (20 to 40 ms on a virtual machine, more than the scan). No
shape checks run inside the loops; the arguments are checked once, at the boundary.
"""

import math
from typing import NamedTuple

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor

from checked_rl.runtime.shapes import typechecked
from checked_rl.spec.returns import NORMALIZE_EPS, check_discount

__all__ = [
    "CHUNK_ELEMENTS",
    "NORMALIZE_EPS",
    "PIECE_ELEMENTS",
    "ROW_SCAN_MIN_ENVS",
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
"""Entries of one time chunk of a blocked scan, small enough to stay in the CPU cache."""

PIECE_ELEMENTS = 2**15
"""Most entries of one operation: torch's intra-op grain size, so that no operation is threaded."""

ROW_SCAN_MIN_ENVS = 2048
"""From this many environments on, scans run one operation per step instead of blocked."""

Rewards = Float[Tensor, "T N"]
Values = Float[Tensor, "T N"]
Flags = Bool[Tensor, "T N"]
Advantages = Float[Tensor, "T N"]

_BITS = {torch.float32: torch.int32, torch.float64: torch.int64}
"""The integer dtype of each float dtype's width, to mask floats bitwise."""

_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}
"""The NumPy dtype of each float dtype, to allocate CPU results."""


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


def _block_size(n_steps: int) -> int:
    """The block length `B` minimising the `2 B + T / B` operations of `_discounted_scan_`."""
    return max(1, round(math.sqrt(n_steps / 2)))


def _steps(elements: int, n_envs: int) -> int:
    """How many time steps of `n_envs` columns make at most `elements` entries (at least 1)."""
    return max(1, elements // max(1, n_envs))


def _chunk_steps(n_envs: int) -> int:
    """The time steps of one chunk: cache-sized for blocked scans, one piece for row scans."""
    wide = n_envs >= ROW_SCAN_MIN_ENVS
    return _steps(PIECE_ELEMENTS if wide else CHUNK_ELEMENTS, n_envs)


def _sizes(n_steps: int, chunk: int) -> list[int]:
    """`n_steps` cut into parts of `chunk` steps, the remainder first (it is scanned last)."""
    lead = n_steps % chunk
    return [lead] * (lead > 0) + [chunk] * (n_steps // chunk)


def _split(tensor: Tensor, sizes: list[int]) -> tuple[Tensor, ...]:
    """`tensor` cut along time into parts of `sizes` steps (one part: the tensor itself)."""
    return (tensor,) if len(sizes) == 1 else tensor.split(sizes)


def _first(buffer: Tensor, n_steps: int) -> Tensor:
    """The first `n_steps` rows of a scratch buffer (the whole buffer without slicing it)."""
    return buffer if n_steps == buffer.shape[0] else buffer[:n_steps]


def _bytes(flags: Tensor) -> Tensor:
    """A bool tensor's storage seen as uint8 (0 or 1), for fast bitwise and conversion ops."""
    return flags.view(torch.uint8)


def _empty(like: Tensor) -> Tensor:
    """An uninitialised contiguous tensor of `like`'s shape, dtype and device, for a result.

    On the CPU it is NumPy's memory: NumPy asks the kernel for huge pages on large arrays (see
    the module docstring); a tensor made by `torch.from_numpy` is an ordinary tensor.
    """
    if like.device.type == "cpu":
        return torch.from_numpy(np.empty(tuple(like.shape), dtype=_NUMPY[like.dtype]))
    return torch.empty(like.shape, dtype=like.dtype, device=like.device)


class _Scratch(NamedTuple):
    """Buffers reused by every chunk of one call, so that no chunk allocates memory."""

    bits: Tensor  # int [C, N] of the floats' width: terminated masks, then masked next values
    cut: Tensor  # bool [C, N]
    keep_bytes: Tensor  # uint8 [C, N], 1 - cut
    keep: Tensor  # float [C, N], 1 - cut
    keep_rows: tuple[Tensor, ...]  # the C rows of `keep` (row scans only)
    rows: Tensor  # float [3, K, N] (blocked scans only): block values, factors and carries


def _scratch(like: Tensor, chunk: int) -> _Scratch:
    """Scratch buffers for chunks of up to `chunk` steps of `like`'s columns, dtype and device."""
    n_envs = like.shape[1]
    blocked = n_envs < ROW_SCAN_MIN_ENVS
    n_blocks = chunk // 2 if blocked else 0  # blocks have at least 2 steps
    keep = torch.empty((chunk, n_envs), dtype=like.dtype, device=like.device)
    return _Scratch(
        bits=torch.empty((chunk, n_envs), dtype=_BITS[like.dtype], device=like.device),
        cut=torch.empty((chunk, n_envs), dtype=torch.bool, device=like.device),
        keep_bytes=torch.empty((chunk, n_envs), dtype=torch.uint8, device=like.device),
        keep=keep,
        keep_rows=() if blocked else keep.unbind(0),
        rows=torch.empty((3, n_blocks, n_envs), dtype=like.dtype, device=like.device),
    )


def _keep_(cut_bytes: Tensor, keep_bytes: Tensor, keep: Tensor) -> Tensor:
    """Write the floats `1 - cut` into `keep`, through the uint8 buffer `keep_bytes`.

    (Converting bytes to floats is much faster than converting bools.)
    """
    torch.bitwise_xor(cut_bytes, 1, out=keep_bytes)
    return keep.copy_(keep_bytes)


def _row_scan_(
    xs: tuple[Tensor, ...], ks: tuple[Tensor, ...], g: float, after: Tensor | None
) -> None:
    """`y_t = x_t + g * keep_t * y_{t+1}` over the rows `xs`, one step at a time, in place.

    `after` is the row after the last (None: zeros); `ks` has at least as many rows as `xs`,
    the floats `1 - cut`.
    """
    start = len(xs) - 1
    if after is None and xs:
        after, start = xs[start], start - 1
    for t in range(start, -1, -1):
        x = xs[t]
        torch.addcmul(x, ks[t], after, value=g, out=x)
        after = x


def _discounted_scan_(
    x: Tensor, keep: Tensor, g: float, after: Tensor | None, scratch: _Scratch
) -> None:
    """`y_t = x_t + g * keep_t * y_{t+1}` over dim 0 of `[C, N]`, overwriting `x` with `y`.

    `after` is `y_C`, the row `[N]` that follows the chunk (None: zeros); `keep` holds the
    floats `1 - cut` in `scratch.keep`. One step at a time for wide batches, blocked for narrow
    ones, as described in the module docstring.
    """
    n_steps, n_envs = x.shape
    if n_envs >= ROW_SCAN_MIN_ENVS:
        _row_scan_(x.unbind(0), scratch.keep_rows, g, after)
        return
    # Narrow batches: no operation below has more than K * N <= PIECE_ELEMENTS entries.
    block = _block_size(n_steps)
    n_blocks = n_steps // block
    lead = n_steps - n_blocks * block
    if block >= 2 and n_blocks >= 2:
        xs = x[lead:].view(n_blocks, block, n_envs).unbind(1)
        ks = keep[lead:].view(n_blocks, block, n_envs).unbind(1)
        local, through, carry = scratch.rows[:, :n_blocks]
        # 1. every block at once, zero carry-in: `local` ends as each block's first value, and
        # `through` as the product of its factors, g^B where no step is cut, else exactly 0
        # (products of ones and zeros; a reduction such as amax would be split across threads).
        local.copy_(xs[block - 1])
        torch.mul(ks[block - 1], g**block, out=through)
        for j in range(block - 2, -1, -1):
            torch.addcmul(xs[j], ks[j], local, value=g, out=local)
            through.mul_(ks[j])
        # 2. across blocks: carry[b] is the value entering block b from block b + 1.
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
    _row_scan_(x[:n_steps].unbind(0), keep[:n_steps].unbind(0), g, after)


def _td_residuals_(
    out: Tensor,
    rewards: Tensor,
    values: Tensor,
    next_bits: Tensor,
    terminated_bytes: Tensor,
    gamma: float,
    bits: Tensor,
) -> Tensor:
    """Write `r + gamma * (1 - terminated) * V(next) - V` into `out` (five cheap passes).

    `next_bits` are the next values seen as integers of their width, `terminated_bytes` the
    flags seen as uint8, `bits` an integer scratch tensor of `out`'s shape. A terminated
    step's next value is zeroed bitwise (`V(next) & 0`), so a NaN or infinity there is ignored,
    exactly as `torch.where(terminated, 0, V(next))` would, and faster on the CPU.
    """
    # terminated - 1 is 0 where terminated, -1 (every bit set) elsewhere.
    mask = bits.copy_(terminated_bytes).sub_(1)
    kept = torch.bitwise_and(next_bits, mask, out=bits).view(out.dtype)
    torch.add(rewards, kept, alpha=gamma, out=out)
    return out.sub_(values)


def _gae_inputs_(
    x: Tensor,
    rewards: Tensor,
    values: Tensor,
    next_bits: Tensor,
    terminated_bytes: Tensor,
    truncated_bytes: Tensor,
    gamma: float,
    scratch: _Scratch,
) -> Tensor:
    """Write a chunk's TD residuals into `x`; return its floats `1 - done` (in `scratch.keep`).

    Runs in pieces of at most `PIECE_ELEMENTS` entries, so that no operation is threaded.
    """
    n_steps, n_envs = x.shape
    bits, keep_bytes, keep = (
        _first(buffer, n_steps) for buffer in (scratch.bits, scratch.keep_bytes, scratch.keep)
    )
    sizes = _sizes(n_steps, _steps(PIECE_ELEMENTS, n_envs))
    tensors = (x, rewards, values, next_bits, terminated_bytes, truncated_bytes, bits)
    pieces = zip(*(_split(t, sizes) for t in (*tensors, keep_bytes, keep)), strict=True)
    for px, r, v, nb, term, trunc, b, kb, k in pieces:
        _td_residuals_(px, r, v, nb, term, gamma, b)
        _keep_(torch.bitwise_or(term, trunc, out=kb), kb, k)
    return keep


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
    gamma = check_discount("td_residuals: gamma", gamma)
    out = _empty(rewards)
    bits = torch.empty(rewards.shape, dtype=_BITS[rewards.dtype], device=rewards.device)
    return _td_residuals_(
        out, rewards, values, next_values.view(bits.dtype), _bytes(terminated), gamma, bits
    )


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
    one does not. Computed in time chunks by the scans described in the module docstring.
    """
    tensors = dict(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        truncated=truncated,
    )
    _check_layout("gae", tensors)
    gamma = check_discount("gae: gamma", gamma)
    lam = check_discount("gae: lam", lam)
    advantages = _empty(rewards)
    n_steps, n_envs = rewards.shape
    chunk = max(1, min(n_steps, _chunk_steps(n_envs)))
    scratch = _scratch(rewards, chunk)
    # Every argument cut into the same time chunks at once (views; `split` is much cheaper than
    # slicing each chunk of each argument), then scanned last chunk first.
    sizes = _sizes(n_steps, chunk)
    chunks = zip(
        _split(advantages, sizes),
        _split(rewards, sizes),
        _split(values, sizes),
        _split(next_values.view(scratch.bits.dtype), sizes),
        _split(_bytes(terminated), sizes),
        _split(_bytes(truncated), sizes),
        strict=True,
    )
    after = None
    for x, r, v, next_bits, term, trunc in reversed(list(chunks)):
        keep = _gae_inputs_(x, r, v, next_bits, term, trunc, gamma, scratch)
        _discounted_scan_(x, keep, gamma * lam, after, scratch)
        after = x[0]
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
    gamma = check_discount("discounted_returns: gamma", gamma)
    returns = _empty(rewards)
    n_steps, n_envs = rewards.shape
    # Chunks of one piece: every operation over a chunk stays under the grain size.
    chunk = max(1, min(n_steps, _steps(PIECE_ELEMENTS, n_envs)))
    scratch = _scratch(rewards, chunk)
    sizes = _sizes(n_steps, chunk)
    chunks = zip(
        _split(returns, sizes),
        _split(rewards, sizes),
        _split(next_values, sizes),
        _split(terminated, sizes),
        _split(truncated, sizes),
        strict=True,
    )
    after = None
    for x, r, v_next, term, trunc in reversed(list(chunks)):
        # The trace stops after a done step and after the last step; there the bootstrap
        # gamma * V(next) enters x_t = r_t + gamma * bootstrap_t, unless the step terminated.
        rows = x.shape[0]
        stops = _first(scratch.cut, rows)
        torch.bitwise_or(_bytes(term), _bytes(trunc), out=_bytes(stops))
        if after is None:
            stops[-1] = True
        x.copy_(v_next).masked_fill_(term | ~stops, 0.0).mul_(gamma).add_(r)
        keep = _keep_(_bytes(stops), _first(scratch.keep_bytes, rows), _first(scratch.keep, rows))
        _discounted_scan_(x, keep, gamma, after, scratch)
        after = x[0]
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
