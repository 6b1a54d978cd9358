"""The CartPole step as pure functions of tensors, eager and compiled: the engine of
`runtime.envs.cartpole.CartPole`.

Thread policy (measurements: docs/guides/performance.md). Where another process wants a core,
a parallel region whose threads spin and wait at a barrier for the busy core runs 10 to 50 times
slower, so by default no part of a CPU step is threaded, whatever `torch.get_num_threads()`
says, and torch's global settings are left alone:

- the compiled step (`fused_advance`) is compiled for `threads` OpenMP threads, 1 by default
  (inductor's `cpp.threads`, set for this compilation only); more is an explicit option of
  `CartPole`;
- the eager step (`eager_advance`) runs in column slices of at most `EAGER_SLICE_ENVS` copies
  on the CPU, so that no tensor operation exceeds torch's intra-op grain size
  (`runtime.scans.PIECE_ELEMENTS` entries) and none is split across threads.
"""

import functools
from collections.abc import Callable

import torch
from torch import Tensor
from torch.fx.experimental.proxy_tensor import make_fx

from checked_rl.runtime.scans import PIECE_ELEMENTS
from checked_rl.spec.envs import cartpole as spec

Outcome = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]

COMPILE_ERRORS: tuple[type[Exception], ...] = (
    torch._dynamo.exc.BackendCompilerFailed,  # inductor wraps its failures in InductorError
    torch._inductor.exc.TritonMissing, torch._inductor.exc.GPUTooOldForTriton, OSError,
)
"""What compiling `fused_advance` raises where it cannot be (no C++ compiler, no Triton)."""

EAGER_SLICE_ENVS = PIECE_ELEMENTS // 4
"""Most copies of one slice of an eager CPU step: a `[4, slice]` operation stays within the
grain size, so no eager operation of the step is threaded."""


def eager_advance(
    params: spec.Params,
    thresholds: Tensor,
    physics: Tensor,
    steps: Tensor,
    actions: Tensor,
    grid: Tensor | None,
    dtype: torch.dtype,
) -> Outcome:
    """`advance` with reset states from `grid` (None: no reset states), never threaded on the
    CPU: batches of more than `EAGER_SLICE_ENVS` copies are stepped slice by slice and the
    results joined (`torch.cat` copies each slice separately)."""
    num_envs = physics.shape[1]
    if physics.device.type != "cpu" or num_envs <= EAGER_SLICE_ENVS:
        fresh = None if grid is None else reset_state(params, grid, dtype)
        return advance(params, thresholds, physics, steps, actions, fresh)
    parts = []
    for start in range(0, num_envs, EAGER_SLICE_ENVS):
        cols = slice(start, start + EAGER_SLICE_ENVS)
        fresh = None if grid is None else reset_state(params, grid[:, cols], dtype)
        parts.append(
            advance(params, thresholds, physics[:, cols], steps[cols], actions[cols], fresh)
        )
    return tuple(torch.cat(outputs, dim=-1) for outputs in zip(*parts, strict=True))


def advance(
    params: spec.Params,
    thresholds: Tensor,
    physics: Tensor,
    steps: Tensor,
    actions: Tensor,
    fresh: Tensor | None,
    *,
    rowwise: bool = False,
) -> Outcome:
    """One step of every copy, as a pure function of tensors (`[4, N]` physics, `[N]` rest).

    Returns `(new, reward, terminated, truncated, following, steps)`: the true successors
    `new`, the flags, and the state the copies go on from: `new` where a copy goes on, its
    column of the reset states `fresh` where it is done, step counts reset to 0 there. With
    `fresh` None, `following` is `new` (the caller resets the done copies). `rowwise` selects
    row by row (same result): compiled, the selection then joins the loop over copies that
    computes `done` instead of reading `done` back from memory in a loop of its own; eager, it
    would cost four more operations.
    """
    new = physics_step(params, physics, actions)
    terminated = is_terminated(thresholds, new)
    steps = steps + 1
    if params.max_episode_steps is None:
        truncated = torch.zeros_like(terminated)
    else:
        truncated = steps >= params.max_episode_steps
    reward = rewards(params, terminated, physics.dtype)
    done = terminated | truncated
    steps = torch.where(done, 0, steps)
    following = new
    if fresh is not None and rowwise:
        rows = zip(fresh.unbind(), new.unbind(), strict=True)
        following = torch.stack([torch.where(done, reset, row) for reset, row in rows])
    elif fresh is not None:
        following = torch.where(done, fresh, new)
    return new, reward, terminated, truncated, following, steps


@functools.lru_cache(maxsize=16)
def fused_advance(
    params: spec.Params, dtype: torch.dtype, num_envs: int, device: torch.device, threads: int = 1
) -> Callable[..., Outcome]:
    """`advance` with reset states from an int16 grid (`reset_state`), compiled by TorchInductor.

    For `num_envs` copies of `dtype` on `device` and contiguous inputs only (the compiled code
    asserts sizes and strides). The graph is traced with `make_fx` and compiled by
    `torch._inductor.compile` rather than through `torch.compile`, whose guards and frame
    handling cost tens of microseconds a call; the key of this cache stands in for the guards.
    Same arithmetic as eager `advance` up to the last bits of `sin` and `cos`, except that the
    flags come back as int32 (0 or 1): vectorised stores of bool were the slowest part of the
    kernel. Compiling takes seconds; inductor caches kernels on disk. The CPU kernels run on
    `threads` OpenMP threads (inductor's `cpp.threads` for this compilation only; 1: no
    parallel region, see the module docstring).
    """

    def fused(
        thresholds: Tensor, physics: Tensor, steps: Tensor, actions: Tensor, grid: Tensor
    ) -> Outcome:
        fresh = reset_state(params, grid, physics.dtype)
        new, reward, terminated, truncated, following, steps = advance(
            params, thresholds, physics, steps, actions, fresh, rowwise=True
        )
        flags = terminated.to(torch.int32), truncated.to(torch.int32)
        return new, reward, *flags, following, steps

    steps_dtype = torch.int32 if dtype == torch.float32 else torch.int64
    example = [
        torch.zeros(2, 1, dtype=dtype, device=device),
        torch.zeros(4, num_envs, dtype=dtype, device=device),
        torch.zeros(num_envs, dtype=steps_dtype, device=device),
        torch.zeros(num_envs, dtype=torch.int64, device=device),
        torch.zeros(4, num_envs, dtype=torch.int16, device=device),
    ]
    options = {"cpp.threads": threads}
    return torch._inductor.compile(make_fx(fused)(*example), example, options=options)


def reset_state(params: spec.Params, grid: Tensor, dtype: torch.dtype) -> Tensor:
    """`[4, K]` reset states from int16 `grid` (`[4, K]`): `k * reset_bound / 2^15` each.

    Uniform over 65536 points spaced `reset_bound / 2^15` apart in `[-reset_bound,
    reset_bound)` when `k` is uniform in `[-2^15, 2^15)`.
    """
    return grid.to(dtype).mul_(params.reset_bound / 2**15)


def physics_step(params: spec.Params, physics: Tensor, actions: Tensor) -> Tensor:
    """`spec.envs.cartpole.accelerations` then `integrate`, over a `[4, N]` state; a new tensor.

    The constants are folded so that each quantity costs one or two tensor operations; the
    results differ from the spec's by a few units in the last place.
    """
    theta, theta_dot = physics[2], physics[3]
    total, pml, half = params.total_mass, params.polemass_length, params.half_length
    costheta = torch.cos(theta)
    sintheta = torch.sin(theta)
    # temp = (force + m_p l theta_dot^2 sin(theta)) / (m_c + m_p), force = (2 a - 1) force_mag
    temp = actions.to(physics.dtype).mul_(2.0 * params.force_mag / total)
    temp.sub_(params.force_mag / total).addcmul_(theta_dot * theta_dot, sintheta, value=pml / total)
    # theta_acc = (g sin - cos temp) / (l (4/3 - m_p cos^2 / (m_c + m_p))), both sides negated
    minus_denominator = torch.mul(costheta, costheta).mul_(params.mass_pole / total * half)
    minus_denominator.sub_(4.0 / 3.0 * half)
    minus_numerator = torch.mul(costheta, temp).sub_(sintheta, alpha=params.gravity)
    theta_acc = torch.div(minus_numerator, minus_denominator)
    # x_acc = temp - m_p l theta_acc cos / (m_c + m_p)
    x_acc = torch.addcmul(temp, theta_acc, costheta, value=-pml / total)
    x, x_dot, tau = physics[0], physics[1], params.tau
    if params.integrator == "euler":
        new_x, new_theta = x.add(x_dot, alpha=tau), theta.add(theta_dot, alpha=tau)
        new_x_dot, new_theta_dot = x_dot.add(x_acc, alpha=tau), theta_dot.add(theta_acc, alpha=tau)
    else:
        new_x_dot, new_theta_dot = x_dot.add(x_acc, alpha=tau), theta_dot.add(theta_acc, alpha=tau)
        new_x, new_theta = x.add(new_x_dot, alpha=tau), theta.add(new_theta_dot, alpha=tau)
    # Stacked, not written into rows with `out=`: compiled (`fused_advance`), a stack fuses.
    return torch.stack((new_x, new_x_dot, new_theta, new_theta_dot))


def is_terminated(thresholds: Tensor, physics: Tensor) -> Tensor:
    """`[N]` bool: |x| > x_threshold or |theta| > theta_threshold (`spec...is_terminated`).

    `thresholds` is `[[x_threshold], [theta_threshold]]`; x and theta are compared in one
    operation. NaN entries never terminate, as in the spec.
    """
    beyond = physics[0::2].abs() > thresholds
    return beyond[0] | beyond[1]


def rewards(params: spec.Params, terminated: Tensor, dtype: torch.dtype) -> Tensor:
    """`[N]`: `spec.envs.cartpole.reward` for each copy, in `dtype`."""
    if params.sutton_barto_reward:
        return torch.zeros(terminated.shape, dtype=dtype, device=terminated.device).sub_(
            terminated.to(dtype)
        )
    return torch.ones(terminated.shape, dtype=dtype, device=terminated.device)
