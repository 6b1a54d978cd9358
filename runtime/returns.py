"""Returns and advantages over batches of traces: `[T, N]` tensors, time by environments.

The batched twins of `spec.returns` (see there for the definitions and their sources): column
`n` of every result is the spec function applied to column `n` of the inputs. Float32 or
float64 (all float arguments of one call share a dtype), any device; the flags `terminated` and
`truncated` are bool tensors. The arguments are checked once, here at the boundary.

`gae` (and so `lambda_returns`) runs on the CPU as one compiled C loop (`runtime.gae_loop`)
where a C compiler is available; the torch path below, `scanned_gae`, runs everywhere else.
Time is processed in chunks, last chunk first: each chunk computes its TD residuals and keep
factors and runs its scan (`runtime.scans`) while its rows are still in the CPU cache, starting
from the first row of the chunk after it. On the CPU a terminated step's next value is zeroed
bitwise and the factors `1 - cut` are made from uint8 views of the flags, and results are
allocated by NumPy: each is cheaper than the obvious operation (measured in
docs/guides/performance.md).
"""

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from checked_rl.runtime import gae_loop, scans
from checked_rl.runtime.shapes import typechecked
from checked_rl.spec.returns import NORMALIZE_EPS, check_discount

__all__ = [
    "NORMALIZE_EPS",
    "Advantages",
    "Flags",
    "Rewards",
    "Values",
    "discounted_returns",
    "gae",
    "lambda_returns",
    "normalize_advantages",
    "scanned_gae",
    "td_residuals",
]

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
    scratch: scans.Scratch,
) -> Tensor:
    """Write a chunk's TD residuals into `x`; return its floats `1 - done` (in `scratch.keep`).

    Runs in pieces of at most `scans.PIECE_ELEMENTS` entries, so that no operation is threaded.
    """
    n_steps, num_envs = x.shape
    buffers = (scratch.bits, scratch.keep_bytes, scratch.keep)
    bits, keep_bytes, keep = (scans.first_rows(buffer, n_steps) for buffer in buffers)
    sizes = scans.time_sizes(n_steps, scans.steps_within(scans.PIECE_ELEMENTS, num_envs))
    tensors = (x, rewards, values, next_bits, terminated_bytes, truncated_bytes, bits)
    pieces = zip(*(scans.split_time(t, sizes) for t in (*tensors, keep_bytes, keep)), strict=True)
    for px, r, v, nb, term, trunc, b, kb, k in pieces:
        _td_residuals_(px, r, v, nb, term, gamma, b)
        scans.keep_factors_(torch.bitwise_or(term, trunc, out=kb), kb, k)
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
    out = scans.empty_like_result(rewards)
    bits = torch.empty(rewards.shape, dtype=scans.FLOAT_BITS[rewards.dtype], device=rewards.device)
    return _td_residuals_(
        out, rewards, values, next_values.view(bits.dtype), scans.as_bytes(terminated), gamma, bits
    )


def _check_gae_arguments(
    where: str, tensors: dict[str, Tensor], gamma: float, lam: float
) -> tuple[float, float]:
    """Check GAE's tensors and discounts; return the discounts as floats."""
    _check_layout(where, tensors)
    return check_discount(f"{where}: gamma", gamma), check_discount(f"{where}: lam", lam)


def _scanned_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
) -> Tensor:
    """GAE by the torch scans of `runtime.scans`, in time chunks, on checked arguments."""
    advantages = scans.empty_like_result(rewards)
    n_steps, num_envs = rewards.shape
    chunk = max(1, min(n_steps, scans.chunk_steps(num_envs)))
    scratch = scans.scratch_buffers(rewards, chunk)
    # Every argument cut into the same time chunks at once (views; `split` is much cheaper than
    # slicing each chunk of each argument), then scanned last chunk first.
    sizes = scans.time_sizes(n_steps, chunk)
    parts = (
        advantages,
        rewards,
        values,
        next_values.view(scratch.bits.dtype),
        scans.as_bytes(terminated),
        scans.as_bytes(truncated),
    )
    chunks = zip(*(scans.split_time(part, sizes) for part in parts), strict=True)
    after = None
    for x, r, v, next_bits, term, trunc in reversed(list(chunks)):
        keep = _gae_inputs_(x, r, v, next_bits, term, trunc, gamma, scratch)
        scans.discounted_scan_(x, keep, gamma * lam, after, scratch)
        after = x[0]
    return advantages


@typechecked
def scanned_gae(
    *,
    rewards: Rewards,
    values: Values,
    next_values: Values,
    terminated: Flags,
    truncated: Flags,
    gamma: float,
    lam: float,
) -> Advantages:
    """GAE by torch tensor operations, on any device: the plain path of `gae`.

    Time is cut into cache-sized chunks, last chunk first; each chunk's TD residuals and keep
    factors are computed in pieces under torch's grain size and scanned by
    `scans.discounted_scan_` (blocked for narrow batches, row by row for wide ones), so the
    float operations of the recurrence are grouped otherwise than the spec's: it agrees with
    the spec to rounding (`properties.returns` tolerances), not bit for bit.
    """
    tensors = dict(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        truncated=truncated,
    )
    gamma, lam = _check_gae_arguments("scanned_gae", tensors, gamma, lam)
    return _scanned_gae(rewards, values, next_values, terminated, truncated, gamma, lam)


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
    one does not. On the CPU it runs the compiled loop of `runtime.gae_loop` (the spec's
    operations in the spec's order, one pass, one thread) where a C compiler is available;
    elsewhere, or without one, the torch scans of `scanned_gae`.
    """
    tensors = dict(
        rewards=rewards,
        values=values,
        next_values=next_values,
        terminated=terminated,
        truncated=truncated,
    )
    gamma, lam = _check_gae_arguments("gae", tensors, gamma, lam)
    if gae_loop.supports(rewards, values, next_values) and gae_loop.library() is not None:
        contiguous = (t.contiguous() for t in tensors.values())
        return gae_loop.gae_(scans.empty_like_result(rewards), *contiguous, gamma, lam)
    return _scanned_gae(rewards, values, next_values, terminated, truncated, gamma, lam)


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
    returns = scans.empty_like_result(rewards)
    n_steps, num_envs = rewards.shape
    # Chunks of one piece: every operation over a chunk stays under the grain size.
    chunk = max(1, min(n_steps, scans.steps_within(scans.PIECE_ELEMENTS, num_envs)))
    scratch = scans.scratch_buffers(rewards, chunk)
    sizes = scans.time_sizes(n_steps, chunk)
    parts = (returns, rewards, next_values, terminated, truncated)
    chunks = zip(*(scans.split_time(part, sizes) for part in parts), strict=True)
    after = None
    for x, r, v_next, term, trunc in reversed(list(chunks)):
        # The trace stops after a done step and after the last step; there the bootstrap
        # gamma * V(next) enters x_t = r_t + gamma * bootstrap_t, unless the step terminated.
        rows = x.shape[0]
        stops = scans.first_rows(scratch.cut, rows)
        torch.bitwise_or(scans.as_bytes(term), scans.as_bytes(trunc), out=scans.as_bytes(stops))
        if after is None:
            stops[-1] = True
        x.copy_(v_next).masked_fill_(term | ~stops, 0.0).mul_(gamma).add_(r)
        keep_bytes, keep = (scans.first_rows(b, rows) for b in (scratch.keep_bytes, scratch.keep))
        keep = scans.keep_factors_(scans.as_bytes(stops), keep_bytes, keep)
        scans.discounted_scan_(x, keep, gamma, after, scratch)
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
