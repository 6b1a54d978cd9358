"""The CartPole step in NumPy on the memory of CPU tensors: the engine of small CPU batches.

A torch operation on a small CPU tensor costs a few microseconds of dispatch whatever its size,
a NumPy ufunc well under one, so below `HOST_MAX_ENVS` copies a step is cheapest as NumPy
arithmetic on the environment's tensors (`Tensor.numpy()` and `torch.from_numpy` share memory,
no copy): about forty ufuncs, no compilation, nothing threaded (NumPy's elementwise ufuncs run
on the calling thread). The constants are 0-d arrays of the state's dtype (`constants`), which a
ufunc takes in about half the time of a Python float, with the same result.
`runtime.envs.cartpole.CartPole` steps this way by default on the CPU below `HOST_MAX_ENVS`
copies; the measurements are in docs/guides/performance.md.

The arithmetic is `spec.envs.cartpole.accelerations` and `integrate`, operation for operation in
the spec's order (a product's two factors may be swapped, which IEEE arithmetic does not see), so
that in float64 a step gives the spec's state bit for bit on the same machine; in float32 the
same operations run in float32. Reset states come from the same int16 grid as the torch steps
(`cartpole_step.reset_state`), bit for bit.
"""

import functools
from typing import NamedTuple

import numpy as np

from checked_rl.spec.envs import cartpole as spec

HOST_MAX_ENVS = 1024
"""Copies up to which (exclusive) a CPU CartPole steps in NumPy by default; from here up the
compiled step is faster (`runtime.envs.cartpole.COMPILE_MIN_ENVS`)."""

GRID_STEP_DIVISOR = 2**15
"""An int16 grid entry `k` is the reset value `k * reset_bound / 2^15` (as `reset_state`)."""

__all__ = ["HOST_MAX_ENVS", "Constants", "constants", "numpy_advance"]


class Constants(NamedTuple):
    """The parameters a step uses, as 0-d arrays of the state's dtype (step counts: of theirs);
    `max_steps` is None without a time limit."""

    two_force_mag: np.ndarray
    force_mag: np.ndarray
    polemass_length: np.ndarray
    total_mass: np.ndarray
    gravity: np.ndarray
    mass_pole: np.ndarray
    four_thirds: np.ndarray
    half_length: np.ndarray
    tau: np.ndarray
    reset_scale: np.ndarray
    one: np.ndarray
    zero: np.ndarray
    max_steps: np.ndarray | None


@functools.lru_cache(maxsize=64)
def constants(params: spec.Params, dtype: np.dtype, steps_dtype: np.dtype) -> Constants:
    """`Constants` of `params` for a state of `dtype` and step counts of `steps_dtype`.

    Each is the Python float the spec uses, rounded to `dtype` once, as a ufunc rounds a Python
    float operand (NEP 50): the arithmetic is unchanged.
    """
    values = (
        2.0 * params.force_mag, params.force_mag, params.polemass_length, params.total_mass,
        params.gravity, params.mass_pole, 4.0 / 3.0, params.half_length, params.tau,
        params.reset_bound / GRID_STEP_DIVISOR,
    )
    limit = params.max_episode_steps
    max_steps = None if limit is None else np.array(limit, steps_dtype)
    one, zero = np.array(1, steps_dtype), np.array(0, steps_dtype)
    return Constants(*(np.array(value, dtype) for value in values), one, zero, max_steps)


def numpy_advance(
    params: spec.Params,
    known: Constants,
    thresholds: np.ndarray,
    physics: np.ndarray,
    steps: np.ndarray,
    actions: np.ndarray,
    grid: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """One step of every copy in NumPy: `(new, reward, terminated, truncated, following, steps)`
    as `cartpole_step.advance` returns them, as new arrays of `physics`' dtype (flags bool, step
    counts of `steps`' dtype; the inputs are left alone). `known` is `constants(params, ...)`
    for these dtypes, `thresholds` is `[[x_threshold], [theta_threshold]]`; the done copies go
    on from their column of the reset states of the int16 `grid` (None: from `new`)."""
    dtype = physics.dtype
    theta, theta_dot = physics[2], physics[3]
    # force = (2 a - 1) force_mag: +-force_mag for the actions 1 and 0
    force = np.multiply(actions, known.two_force_mag, dtype=dtype)
    force -= known.force_mag
    costheta, sintheta = np.cos(theta), np.sin(theta)
    # temp = (force + polemass_length * theta_dot^2 * sin) / total_mass
    temp = np.square(theta_dot)
    temp *= known.polemass_length
    temp *= sintheta
    temp += force
    temp /= known.total_mass
    # Rows: x_acc, theta_acc, so that both velocities are integrated in one operation.
    acc = np.empty((2, physics.shape[1]), dtype)
    x_acc, theta_acc = acc
    # theta_acc = (gravity * sin - cos * temp) / (half_length * (4/3 - m_p cos^2 / total_mass))
    np.multiply(sintheta, known.gravity, out=theta_acc)
    theta_acc -= costheta * temp
    denominator = np.square(costheta)
    denominator *= known.mass_pole
    denominator /= known.total_mass
    np.subtract(known.four_thirds, denominator, out=denominator)
    denominator *= known.half_length
    theta_acc /= denominator
    # x_acc = temp - polemass_length * theta_acc * cos / total_mass
    np.multiply(theta_acc, known.polemass_length, out=x_acc)
    x_acc *= costheta
    x_acc /= known.total_mass
    np.subtract(temp, x_acc, out=x_acc)
    new = _integrate(params, known.tau, physics, acc)
    beyond = np.abs(new[0::2]) > thresholds  # |x| > t is x < -t or x > t, NaN never beyond
    terminated = beyond[0] | beyond[1]
    steps = steps + known.one
    if known.max_steps is None:
        truncated = np.zeros_like(terminated)
    else:
        truncated = steps >= known.max_steps
    if params.sutton_barto_reward:
        reward = np.zeros(terminated.shape, dtype)
        reward -= terminated  # 0 - 1 = -1 where terminated, +0.0 elsewhere (not -0.0)
    else:
        reward = np.ones(terminated.shape, dtype)
    done = terminated | truncated
    steps = np.where(done, known.zero, steps)
    following = new
    if grid is not None:
        fresh = np.multiply(grid, known.reset_scale, dtype=dtype)
        following = np.where(done, fresh, new)
    return new, reward, terminated, truncated, following, steps


def _integrate(
    params: spec.Params, tau: np.ndarray, physics: np.ndarray, acc: np.ndarray
) -> np.ndarray:
    """`spec.envs.cartpole.integrate`: a new `[4, N]` array (x, x_dot, theta, theta_dot) from
    `physics` and the accelerations `acc` (`[2, N]`: x_acc, theta_acc). Each `q + tau * q_dot`
    runs once over both positions (rows 0 and 2) or both velocities (rows 1 and 3)."""
    new = np.empty_like(physics)
    positions, velocities = new[0::2], new[1::2]
    np.multiply(acc, tau, out=velocities)
    velocities += physics[1::2]
    # Explicit Euler moves with the old velocities, semi-implicit Euler with the new ones.
    moving = physics[1::2] if params.integrator == "euler" else velocities
    np.multiply(moving, tau, out=positions)
    positions += physics[0::2]
    return new
