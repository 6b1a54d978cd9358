"""Discounted scans over time, the engine of `runtime.returns`: `[C, N]` chunks, in place.

Every backward recurrence of GAE and returns is the scan `y_t = x_t + g * keep_t * y_{t+1}`
(`keep = 1 - cut`, `y_T = 0`). Wide batches (`N >= ROW_SCAN_MIN_ENVS`) run it one fused
multiply-add per step; narrow ones, where the fixed cost of an operation dominates, run it
blocked (`discounted_scan_`: about `2 B + T / B` operations instead of `T`, the same
multiply-adds as the spec in another grouping, so float64 agrees with the spec to rounding).
No operation touches more than `PIECE_ELEMENTS` entries, torch's grain size for intra-op
threads, so none is split across threads: a threaded pass waits for every core, and on a busy
machine that is many times slower (measurements: docs/guides/performance.md).
"""

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CHUNK_ELEMENTS",
    "FLOAT_BITS",
    "PIECE_ELEMENTS",
    "ROW_SCAN_MIN_ENVS",
    "Scratch",
    "as_bytes",
    "chunk_steps",
    "discounted_scan_",
    "empty_like_result",
    "first_rows",
    "keep_factors_",
    "scratch_buffers",
    "split_time",
    "steps_within",
    "time_sizes",
]

CHUNK_ELEMENTS = 2**17
"""Entries of one time chunk of a blocked scan, small enough to stay in the CPU cache."""

PIECE_ELEMENTS = 2**15
"""Most entries of one operation: torch's intra-op grain size, so that no operation is threaded."""

ROW_SCAN_MIN_ENVS = 2048
"""From this many environments on, scans run one operation per step instead of blocked."""

FLOAT_BITS = {torch.float32: torch.int32, torch.float64: torch.int64}
"""The integer dtype of each float dtype's width, to mask floats bitwise."""

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
"""The NumPy dtype of each float dtype, to allocate CPU results."""


def _block_size(n_steps: int) -> int:
    """The block length `B` minimising the `2 B + T / B` operations of `discounted_scan_`."""
    return max(1, round(math.sqrt(n_steps / 2)))


def steps_within(elements: int, num_envs: int) -> int:
    """How many time steps of `num_envs` columns make at most `elements` entries (at least 1)."""
    return max(1, elements // max(1, num_envs))


def chunk_steps(num_envs: int) -> int:
    """The time steps of one chunk: cache-sized for blocked scans, one piece for row scans."""
    wide = num_envs >= ROW_SCAN_MIN_ENVS
    return steps_within(PIECE_ELEMENTS if wide else CHUNK_ELEMENTS, num_envs)


def time_sizes(n_steps: int, chunk: int) -> list[int]:
    """`n_steps` cut into parts of `chunk` steps, the remainder first (it is scanned last)."""
    lead = n_steps % chunk
    return [lead] * (lead > 0) + [chunk] * (n_steps // chunk)


def split_time(tensor: Tensor, sizes: list[int]) -> tuple[Tensor, ...]:
    """`tensor` cut along time into parts of `sizes` steps (one part: the tensor itself)."""
    return (tensor,) if len(sizes) == 1 else tensor.split(sizes)


def first_rows(buffer: Tensor, n_steps: int) -> Tensor:
    """The first `n_steps` rows of a scratch buffer (the whole buffer without slicing it)."""
    return buffer if n_steps == buffer.shape[0] else buffer[:n_steps]


def as_bytes(flags: Tensor) -> Tensor:
    """A bool tensor's storage seen as uint8 (0 or 1), for fast bitwise and conversion ops."""
    return flags.view(torch.uint8)


def empty_like_result(like: Tensor) -> Tensor:
    """An uninitialised contiguous tensor of `like`'s shape, dtype and device, for a result.

    On the CPU it is NumPy's memory: NumPy asks the kernel for huge pages on large arrays,
    where a fresh torch tensor can take a page fault per 4 KB on first write; a tensor made by
    `torch.from_numpy` is an ordinary tensor.
    """
    if like.device.type == "cpu":
        return torch.from_numpy(np.empty(tuple(like.shape), dtype=_NUMPY_DTYPES[like.dtype]))
    return torch.empty(like.shape, dtype=like.dtype, device=like.device)


class Scratch(NamedTuple):
    """Buffers reused by every chunk of one call, so that no chunk allocates memory."""

    bits: Tensor  # int [C, N] of the floats' width: terminated masks, then masked next values
    cut: Tensor  # bool [C, N]
    keep_bytes: Tensor  # uint8 [C, N], 1 - cut
    keep: Tensor  # float [C, N], 1 - cut
    keep_rows: tuple[Tensor, ...]  # the C rows of `keep` (row scans only)
    rows: Tensor  # float [3, K, N] (blocked scans only): block values, factors and carries


def scratch_buffers(like: Tensor, chunk: int) -> Scratch:
    """Scratch buffers for chunks of up to `chunk` steps of `like`'s columns, dtype and device."""
    num_envs = like.shape[1]
    blocked = num_envs < ROW_SCAN_MIN_ENVS
    n_blocks = chunk // 2 if blocked else 0  # blocks have at least 2 steps
    keep = torch.empty((chunk, num_envs), dtype=like.dtype, device=like.device)
    return Scratch(
        bits=torch.empty((chunk, num_envs), dtype=FLOAT_BITS[like.dtype], device=like.device),
        cut=torch.empty((chunk, num_envs), dtype=torch.bool, device=like.device),
        keep_bytes=torch.empty((chunk, num_envs), dtype=torch.uint8, device=like.device),
        keep=keep,
        keep_rows=() if blocked else keep.unbind(0),
        rows=torch.empty((3, n_blocks, num_envs), dtype=like.dtype, device=like.device),
    )


def keep_factors_(cut_bytes: Tensor, keep_bytes: Tensor, keep: Tensor) -> Tensor:
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


def discounted_scan_(
    x: Tensor, keep: Tensor, g: float, after: Tensor | None, scratch: Scratch
) -> None:
    """`y_t = x_t + g * keep_t * y_{t+1}` over dim 0 of `[C, N]`, overwriting `x` with `y`.

    `after` is `y_C`, the row `[N]` that follows the chunk (None: zeros); `keep` holds the
    floats `1 - cut` in `scratch.keep`. One step at a time for wide batches. Narrow ones are
    cut into `K` blocks of `B` steps (`B` about `sqrt(T / 2)`), then three short loops of
    whole-batch operations run: (1) inside every block at once, the scan with zero carry-in,
    giving each block's first value `local_b`; (2) across blocks, the value entering block `b`
    from the future, `carry_b = local_{b+1} + g^B * open_{b+1} * carry_{b+1}`, where `open_b`
    says no step of block `b` is cut (its factors' product is `g^B` or exactly 0); (3) inside
    every block again, from `carry_b`, writing the final values. No divisions, logarithms or
    cumulative products that could underflow. Leading steps that fill no block are finished by
    the row loop.
    """
    n_steps, num_envs = x.shape
    if num_envs >= ROW_SCAN_MIN_ENVS:
        _row_scan_(x.unbind(0), scratch.keep_rows, g, after)
        return
    # Narrow batches: no operation below has more than K * N <= PIECE_ELEMENTS entries.
    block = _block_size(n_steps)
    n_blocks = n_steps // block
    lead = n_steps - n_blocks * block
    if block >= 2 and n_blocks >= 2:
        xs = x[lead:].view(n_blocks, block, num_envs).unbind(1)
        ks = keep[lead:].view(n_blocks, block, num_envs).unbind(1)
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


